// Node flags for a process that runs the PostgreSQL gateway (it parses SQL with libpg-query, WASM).
//
// --liftoff-only: V8 runs WebAssembly with its baseline compiler only. Under V8's default tiering,
// one ~100 KB function of libpg-query's WASM is recompiled by TurboFan once the first statement is
// parsed, and that compile takes ~540 MiB of memory for a second or two: far over the gateway
// container's 512Mi limit (src/controller/render.ts). Without tier-up libpg-query alone peaks at
// ~90 MiB instead of ~640, for ~13 µs more CPU per statement the caches have not seen
// (bench/README.md, "postgres.ts"). A V8 flag cannot be set once V8 runs (v8.setFlagsFromString
// has no effect on it) and NODE_OPTIONS refuses it, so it goes on the command line: the
// controller renders it into Postgres gateways' command, `npm run warden` (warden dev) has it,
// and bench/postgres.ts starts its gateway with it. Only there: it would also slow undici's HTTP
// parser (WASM too) in the HTTP gateways, by ~20–30 % CPU per request (bench/README.md, "http.ts").
// wasm-memory.test.ts checks the memory with exactly these flags.
export const POSTGRES_GATEWAY_NODE_FLAGS: readonly string[] = ['--liftoff-only'];
