#!/usr/bin/env node
// The `warden` command. Warden's sources are TypeScript run directly by Node 24's type stripping
// (docs/adr/0002-typescript-without-a-build-step.md), so an older Node cannot load them.
// A process that runs the PostgreSQL gateway wants Node flags of its own
// (src/sidecar/postgres/node-flags.ts): `node --liftoff-only bin/warden.js sidecar …`.
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
