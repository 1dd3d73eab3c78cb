import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { SqlClassifier } from './classify.ts';
import { HOSTILE_STATEMENTS, READ_STATEMENTS } from './corpus.ts';
import { LITERAL_KEY_MAX_LENGTH, literalKey, singleStatementText } from './literal-key.ts';

const I = '\u0001'; // integer
const S = '\u0002'; // string
const D = '\u0003'; // decimal

// pgbench's built-in scripts as pgbench sends them in simple-query mode (-M simple).
const PGBENCH = {
  select: 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;',
  updateAccount: 'UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 48213;',
  updateTeller: 'UPDATE pgbench_tellers SET tbalance = tbalance + -1234 WHERE tid = 7;',
  updateBranch: 'UPDATE pgbench_branches SET bbalance = bbalance + -1234 WHERE bid = 1;',
  insertHistory: 'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 48213, -1234, CURRENT_TIMESTAMP);',
};

describe('literalKey', () => {
  it.each([
    [PGBENCH.select, `SELECT abalance FROM pgbench_accounts WHERE aid = ${I};`],
    [PGBENCH.updateAccount, `UPDATE pgbench_accounts SET abalance = abalance + -${I} WHERE aid = ${I};`],
    [PGBENCH.updateTeller, `UPDATE pgbench_tellers SET tbalance = tbalance + -${I} WHERE tid = ${I};`],
    [PGBENCH.updateBranch, `UPDATE pgbench_branches SET bbalance = bbalance + -${I} WHERE bid = ${I};`],
    [PGBENCH.insertHistory, `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${I}, ${I}, ${I}, -${I}, CURRENT_TIMESTAMP);`],
  ])('keys pgbench statement %j', (text, key) => {
    expect(literalKey(text)).toBe(key);
  });

  it.each([
    ['SELECT abalance FROM pgbench_accounts WHERE aid = 1;', 'SELECT abalance FROM pgbench_accounts WHERE aid = 999999999;'],
    ["SELECT * FROM t WHERE a = 'x' AND b = 1.5", "SELECT * FROM t WHERE a = 'it''s; DROP TABLE x --' AND b = 0.000001"],
    ["INSERT INTO t VALUES ('', 0)", "INSERT INTO t VALUES ('漢字 🙂 ''quoted''', 123456789)"],
    ["SELECT 'a'\n'b'", "SELECT '/* c */'\n'$$'"],
  ])('gives %j and %j the same key', (a, b) => {
    expect(literalKey(a)).toBeDefined();
    expect(literalKey(a)).toBe(literalKey(b));
  });

  it.each([
    ['integers and decimals', 'SELECT CAST(x AS timestamp(3))', 'SELECT CAST(x AS timestamp(3.5))'],
    ['numbers and strings', 'SELECT 1', "SELECT '1'"],
    ['whitespace between adjacent strings', "SELECT 'a'\n'b'", "SELECT 'a' 'b'"],
    ['a string and a string containing a statement', "SELECT 'x' FROM t", "SELECT 'x' FROM t; DELETE FROM t"],
  ])('keeps %s apart', (_, a, b) => {
    expect(literalKey(a)).not.toBe(literalKey(b));
  });

  it.each([
    ['digits inside identifiers', 'SELECT x1, int4 FROM t2', 'SELECT x1, int4 FROM t2'],
    ['positional parameters', 'SELECT * FROM t WHERE a = $1 AND b = $12', 'SELECT * FROM t WHERE a = $1 AND b = $12'],
    ['leading zeros', 'SELECT 007', `SELECT ${I}`],
    ['a string after a number and an operator', "SELECT 1||'a'", `SELECT ${I}||${S}`],
    ['non-ASCII identifiers', 'SELECT é1 FROM t', 'SELECT é1 FROM t'],
    ['a decimal', 'SELECT 12.50', `SELECT ${D}`],
    ['a text without literals (the text itself)', 'SELECT a FROM t', 'SELECT a FROM t'],
  ])('keeps %s', (_, text, key) => {
    expect(literalKey(text)).toBe(key);
  });

  it.each([
    ['a line comment', 'SELECT 1 -- c'],
    ['a line comment hiding a statement end', 'SELECT 1 --\n; DELETE FROM t'],
    ['a block comment', 'SELECT /* c */ 1'],
    ['a backslash outside strings', 'SELECT 1 \\ 2'],
    ['a backslash inside a string', "SELECT 'a\\'"],
    ['dollar quoting', 'SELECT $$ x $$'],
    ['tagged dollar quoting', 'SELECT $q$ x $q$'],
    ['$ inside an identifier', 'SELECT a$b FROM t'],
    ['a parameter followed by identifier characters', 'SELECT $1abc'],
    ['a parameter after an identifier character', 'SELECT a$1'],
    ['a lone $', 'SELECT $ 1'],
    ['a quoted identifier', 'SELECT "a" FROM t'],
    ['a Unicode identifier', 'SELECT U&"d!0061t" UESCAPE \'!\''],
    ['an escape string', "SELECT E'a'"],
    ['a lower-case escape string', "SELECT e'a'"],
    ['a bit string', "SELECT B'101'"],
    ['a hex bit string', "SELECT X'1F'"],
    ['a national string', "SELECT N'a'"],
    ['a Unicode string', "SELECT U&'\\0061'"],
    ['a Unicode string without backslash', "SELECT U&'a'"],
    ['a typed literal without a space', "SELECT date'2024-01-01'"],
    ['a string right after a number', "SELECT 1'a'"],
    ['an unterminated string', "SELECT 'abc"],
    ['an unterminated string ending in an escaped quote', "SELECT 'abc''"],
    ['an exponent', 'SELECT 1e5'],
    ['an exponent after a decimal', 'SELECT 1.5E-3'],
    ['a hexadecimal integer', 'SELECT 0x1F'],
    ['an octal integer', 'SELECT 0o17'],
    ['a binary integer', 'SELECT 0b101'],
    ['an underscore in a number', 'SELECT 1_000'],
    ['trailing identifier characters', 'SELECT 123abc'],
    ['a number followed by $', 'SELECT 1$'],
    ['a leading-dot decimal', 'SELECT .5'],
    ['a qualified-looking decimal', 'SELECT t.5'],
    ['a trailing-dot decimal', 'SELECT 1.'],
    ['a range of two dots', 'SELECT a[1..2]'],
    ['a number with two dots', 'SELECT 1.5.3'],
    ['an integer of 10 digits (ICONST or FCONST by value)', 'SELECT 2147483648'],
    ['float(p), whose p the grammar checks', 'SELECT CAST(1 AS float(10))'],
    ['set_config, whose first argument the classifier reads', "SELECT set_config('standard_conforming_strings', 'off', false)"],
    ['FLOAT in any case', 'SELECT CAST(1 AS FLOAT)'],
    ['a marker character in the text', 'SELECT \u0001'],
    ['a NUL', "SELECT 'a\u0000'"],
    ['a form feed', 'SELECT\f1'],
    ['a lone surrogate', "SELECT '\ud800'"],
    ['a text over the length limit', `SELECT '${'x'.repeat(LITERAL_KEY_MAX_LENGTH)}'`],
  ])('bails on %s', (_, text) => {
    expect(literalKey(text)).toBeUndefined();
  });
});

describe('singleStatementText', () => {
  it.each([
    ['SELECT 1;', 'SELECT 1'],
    ['  SELECT 1 ; ;\n', 'SELECT 1'],
    ["SELECT ';'", "SELECT ';'"],
    ['SELECT 1', 'SELECT 1'],
  ])('cuts %j to %j', (text, cut) => {
    expect(singleStatementText(text)).toBe(cut);
  });
});

describe('the literal cache level of SqlClassifier', () => {
  let uncached: SqlClassifier;
  beforeAll(async () => {
    uncached = await SqlClassifier.create({ cacheSize: 0 });
  });
  const fresh = async (): Promise<SqlClassifier> => await SqlClassifier.create();

  it('answers a text that differs only in literals from the cache, with its own text', async () => {
    const classifier = await fresh();
    const first = classifier.classify(PGBENCH.updateAccount);
    const other = 'UPDATE pgbench_accounts SET abalance = abalance + -77 WHERE aid = 5;';
    const second = classifier.classify(other);
    // A hit shares the cached statement's arrays (a parse makes new ones).
    expect(second[0]!.flags).toBe(first[0]!.flags);
    expect(second).toStrictEqual(uncached.classify(other));
    expect(second[0]!.text).toBe('UPDATE pgbench_accounts SET abalance = abalance + -77 WHERE aid = 5');
    // The cached statement is not changed by the hit.
    expect(first[0]!.text).toBe(PGBENCH.updateAccount.slice(0, -1));
  });

  it("shares the cached statement's outputSources (the Postgres session keys its masking plan on them)", async () => {
    const classifier = await fresh();
    const first = classifier.classify("SELECT email AS e, id FROM users WHERE id = 1 AND name = 'a'");
    const second = classifier.classify("SELECT email AS e, id FROM users WHERE id = 22 AND name = 'bb'");
    expect(first[0]!.outputSources).toEqual([['email', 'e'], ['id']]);
    expect(second[0]).not.toBe(first[0]);
    expect(second[0]!.outputSources).toBe(first[0]!.outputSources);
  });

  it('is off with literalCacheSize 0', async () => {
    const classifier = await SqlClassifier.create({ literalCacheSize: 0 });
    const first = classifier.classify('SELECT a FROM t WHERE id = 1');
    expect(classifier.classify('SELECT a FROM t WHERE id = 2')[0]!.flags).not.toBe(first[0]!.flags);
  });

  it.each([
    // A naive normalizer that strips `--` comments before it looks at strings gives both the key
    // "SELECT '": the read would vouch for the DELETE.
    ["SELECT '--', 1 FROM a", "SELECT '--', 2; DELETE FROM a"],
    ["SELECT '--', 1 FROM a", "SELECT '--', 2 FROM b"],
    // A scanner that looked for strings inside comments would give each pair one key.
    ["SELECT 1 -- 'x'", "SELECT 1 -- '\n; DELETE FROM a; --'"],
    ["SELECT 1 /* 'x' */", "SELECT 1 /* '*/; DELETE FROM a; /*' */"],
    // One that splits on `;` or ignores `''` escapes.
    ["SELECT ';' FROM a", "SELECT ''; DELETE FROM a; SELECT ''"],
    ["SELECT 'it''s' FROM a", "SELECT 'it'; DELETE FROM a; SELECT 's' FROM a"],
    // One that treats dollar quotes or E'' escapes as plain text.
    ['SELECT $$x$$ FROM a', "SELECT $$x'; DELETE FROM a; SELECT '$$ FROM a"],
    ["SELECT E'x' FROM a", "SELECT E'x\\'; DELETE FROM a; SELECT \\'' FROM a"],
    // Statements whose literals matter are never answered from this level.
    ["DO 'BEGIN PERFORM 1; END'", "DO 'BEGIN DROP TABLE accounts; END'"],
    ["COPY accounts TO STDOUT WITH (FORMAT 'csv')", "COPY accounts TO '/tmp/stolen.csv' WITH (FORMAT 'csv')"],
    ["SET application_name = 'a'", "SET role = 'postgres'"],
    ["EXPLAIN SELECT 'a'", "EXPLAIN ANALYZE SELECT 'a'"],
    ['SELECT CAST(1 AS float(5))', 'SELECT CAST(1 AS float(0))'],
    ['SELECT CAST(x AS timestamp(3)) FROM a', 'SELECT CAST(x AS timestamp(3.5)) FROM a'],
  ])('after %j, classifies %j as a fresh parse does', async (first, second) => {
    const classifier = await fresh();
    classifier.classify(first);
    expect(classifier.classify(second)).toStrictEqual(uncached.classify(second));
  });

  it('runs the hostile and read corpora, and literal variants of them, as an uncached classifier does', async () => {
    const classifier = await fresh();
    const corpus = [...HOSTILE_STATEMENTS, ...READ_STATEMENTS];
    const variants = corpus.map((s) => s.replace(/\b1\b/g, '7').replace(/'x'/g, "'y''z'"));
    for (const round of [corpus, corpus, variants]) {
      for (const sql of round) expect(classifier.classify(sql), sql).toStrictEqual(uncached.classify(sql));
    }
  });

  it('answers generated statements as an uncached classifier does (property)', async () => {
    const classifier = await fresh();
    // Mostly non-negative: the sign is an operator and part of the key.
    const int = fc.oneof({ arbitrary: fc.nat(999_999_999), weight: 4 }, { arbitrary: fc.integer({ min: -999_999_999, max: -1 }), weight: 1 }).map(String);
    const bigInt = fc.bigInt({ min: 1_000_000_000n, max: 99_999_999_999_999n }).map(String);
    const decimal = fc.tuple(fc.nat(99_999), fc.nat(9_999)).map(([a, b]) => `${a}.${b}`);
    const number = fc.oneof({ arbitrary: int, weight: 4 }, { arbitrary: decimal, weight: 2 }, { arbitrary: bigInt, weight: 1 });
    const pieces = ["''", ' ', ';', '; DROP TABLE x', '--', '/*', '*/', '$$', '\\', 'é', '漢', '🙂', 'DELETE FROM a', "'; DELETE FROM a; --"];
    const stringBody = fc.array(fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 5 })), { maxLength: 6 }).map((parts) => parts.join(''));
    const string = stringBody.map((s) => `'${s.replace(/'/g, "''")}'`);
    const literal = fc.oneof(number, string);
    const end = fc.constantFrom('', ';', ' ;', ';\n', '  ');
    // Each shape: its literal slots and the statement they make. A run classifies two statements of
    // one shape (the second is a literal-level hit when the keys agree) and compares both with an
    // uncached parse.
    // `true`: a single SELECT/INSERT/UPDATE/DELETE, which the literal level may answer.
    const shapes: Array<[boolean, fc.Arbitrary<string[]>, (l: string[]) => string]> = [
      [true, fc.tuple(int), ([n]) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${n}`],
      [true, fc.tuple(int, int), ([d, n]) => `UPDATE pgbench_accounts SET abalance = abalance + ${d} WHERE aid = ${n}`],
      [true, fc.tuple(int, int, int, number), ([t, b, a, d]) => `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${t}, ${b}, ${a}, ${d}, CURRENT_TIMESTAMP)`],
      [true, fc.tuple(string, number), ([s, n]) => `DELETE FROM orders WHERE note = ${s} AND id > ${n}`],
      [true, fc.tuple(literal, int, fc.nat(100).map(String)), ([l, n, k]) => `SELECT ${l} AS x, email FROM users WHERE id = ${n} LIMIT ${k}`],
      [true, fc.tuple(literal, literal, string), ([a, b, s]) => `SELECT * FROM t WHERE a IN (${a}, ${b}) AND b = ${s}`],
      [true, fc.tuple(string, number, int), ([s, d, n]) => `UPDATE accounts SET owner = ${s}, balance = ${d} WHERE id = ${n}`],
      [true, fc.tuple(number), ([n]) => `SELECT CAST(now() AS timestamp(${n}))`],
      [true, fc.tuple(number, string), ([n, s]) => `SELECT lower(${s}) FROM accounts WHERE balance > ${n} FOR UPDATE`],
      [false, fc.tuple(string, int), ([s, n]) => `SELECT ${s}; DELETE FROM accounts WHERE id = ${n}`],
      [false, fc.tuple(string), ([s]) => `COPY accounts TO ${s}`],
      [false, fc.tuple(string), ([s]) => `DO ${s}`],
    ];
    const pair = fc.nat(shapes.length - 1).chain((i) => {
      const [answerable, slots, render] = shapes[i]!;
      return fc.tuple(slots, slots, end).map(([a, b, e]) => ({ answerable, first: render(a) + e, second: render(b) + e }));
    });
    let hits = 0;
    let expected = 0;
    fc.assert(
      fc.property(pair, ({ answerable, first, second }) => {
        fc.pre(first !== second);
        const a = classifier.classify(first);
        const b = classifier.classify(second);
        expect(a).toStrictEqual(uncached.classify(first));
        expect(b).toStrictEqual(uncached.classify(second));
        const key = literalKey(first);
        if (answerable && key !== undefined && key === literalKey(second) && a[0]?.statementClass !== 'unparseable') expected++;
        if (a.length === 1 && b.length === 1 && a[0]!.flags === b[0]!.flags) hits++;
      }),
      { numRuns: 400 },
    );
    // Whenever the keys agree the second statement is a hit, and the property is only worth
    // something if that happened often.
    expect(hits).toBe(expected);
    expect(expected).toBeGreaterThan(40); // about 80 of 400 runs
  });
});
