#!/usr/bin/env -S node --liftoff-only
// The `warden` command. Warden's sources are TypeScript run directly by Node 24's type stripping
// (docs/adr/0002-typescript-without-a-build-step.md), so an older Node cannot load them.
//
// --liftoff-only: V8 runs WebAssembly with its baseline compiler only. The PostgreSQL gateway's
// parser (libpg-query, WASM) has one ~100 KB function whose TurboFan tier-up, which the first
// parsed statement triggers, takes ~540 MiB of compiler memory for a second or two: far over the
// gateway container's 512Mi limit (src/controller/render.ts). Without tier-up, libpg-query alone
// peaks at ~90 MiB instead of ~640, for ~13 µs more CPU per never-seen statement (bench/README.md,
// "postgres.ts"). A V8 flag cannot be set once V8 runs (v8.setFlagsFromString has no effect on
// it), and NODE_OPTIONS refuses it, hence here. src/sidecar/postgres/wasm-memory.test.ts checks it.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `warden: needs Node.js 24 or newer, but this is Node ${process.versions.node}.\n` +
      '  In a checkout, run it through npm so the project\'s Node 24 comes first on PATH:\n' +
      '    npm run warden -- --help     or     npx warden --help\n',
  );
  process.exit(1);
}
// src/cli/main.ts parses argv only when it is the entry module (import.meta.main), which it is not
// when imported from here: build the command tree and run it explicitly.
const { buildCli } = await import('../src/cli/main.ts');
await buildCli().parseAsync(process.argv);
