// Micro-benchmark of SqlClassifier.classify on pgbench's statements as `-M simple` sends them
// (values inline, fresh random ones each transaction): the exact-text cache alone vs. with the
// literal-insensitive level (src/sidecar/postgres/literal-key.ts). No servers; pure CPU.
//
//   node_modules/.bin/node bench/classify.ts            # BENCH_TX=20000 transactions per run

import { SqlClassifier } from '../src/sidecar/postgres/classify.ts';

const TX = Number(process.env.BENCH_TX ?? 20_000);
const ACCOUNTS = 1_000_000; // pgbench -s 10
const TELLERS = 100;
const BRANCHES = 10;

const rand = (n: number): number => 1 + Math.floor(Math.random() * n);

/** One transaction of each built-in script, as the texts pgbench sends. */
const SCRIPTS: Record<string, () => string[]> = {
  'select-only': () => [`SELECT abalance FROM pgbench_accounts WHERE aid = ${rand(ACCOUNTS)};`],
  'tpcb-like': () => {
    const [aid, tid, bid, delta] = [rand(ACCOUNTS), rand(TELLERS), rand(BRANCHES), rand(10_000) - 5_000];
    return [
      'BEGIN;',
      `UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid};`,
      `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
      `UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${tid};`,
      `UPDATE pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = ${bid};`,
      `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${tid}, ${bid}, ${aid}, ${delta}, CURRENT_TIMESTAMP);`,
      'END;',
    ];
  },
};

/** CPU µs per classify call over `texts` (user + system time of this process). */
function measure(classifier: SqlClassifier, texts: string[]): number {
  const start = process.cpuUsage();
  for (const t of texts) classifier.classify(t);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / texts.length;
}

const levels = {
  'exact-text cache only': await SqlClassifier.create({ literalCacheSize: 0 }),
  'with literal level': await SqlClassifier.create(),
};

const rows: Array<Record<string, string | number>> = [];
for (const [script, make] of Object.entries(SCRIPTS)) {
  const perTx = make().length;
  for (const [level, classifier] of Object.entries(levels)) {
    measure(classifier, Array.from({ length: Math.ceil(TX / 10) }, make).flat()); // warm-up (JIT, caches)
    const texts = Array.from({ length: TX }, make).flat();
    const us = measure(classifier, texts);
    rows.push({ script, level, 'µs/classify': +us.toFixed(2), 'µs/tx': +(us * perTx).toFixed(1) });
  }
}
console.table(rows);
