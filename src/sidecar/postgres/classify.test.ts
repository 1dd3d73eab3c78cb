import { beforeAll, describe, expect, it } from 'vitest';
import { type ClassifiedStatement, SqlClassifier } from './classify.ts';
import { HOSTILE_STATEMENTS, READ_STATEMENTS } from './corpus.ts';

let classifier: SqlClassifier;
beforeAll(async () => {
  classifier = await SqlClassifier.create();
});

const one = (sql: string): ClassifiedStatement => {
  const statements = classifier.classify(sql);
  expect(statements).toHaveLength(1);
  return statements[0]!;
};

describe('SqlClassifier', () => {
  it('has a hostile corpus of at least 50 statements', () => {
    expect(HOSTILE_STATEMENTS.length).toBeGreaterThanOrEqual(50);
  });

  it.each(HOSTILE_STATEMENTS)('never calls %j a read', (sql) => {
    const statements = classifier.classify(sql);
    expect(statements.length).toBeGreaterThan(0);
    expect(statements.some((s) => s.statementClass !== 'read')).toBe(true);
  });

  it.each(READ_STATEMENTS)('calls %j a read', (sql) => {
    expect(classifier.classify(sql).map((s) => [s.statementClass, s.flags])).toEqual([['read', []]]);
  });

  it.each([
    ['INSERT INTO t VALUES (1)', 'write'],
    ['CREATE TABLE t (a int)', 'ddl'],
    ['GRANT SELECT ON t TO bob', 'privilege'],
    ['SET ROLE admin', 'privilege'],
    ['BEGIN', 'transaction'],
    ['COMMIT', 'transaction'],
    ['SET statement_timeout = 1000', 'session'],
    ['VACUUM t', 'utility'],
    ['SELECT * INTO t2 FROM t', 'ddl'],
    ['not sql', 'unparseable'],
    ['SELECT pg_terminate_backend(1)', 'privilege'],
  ] as const)('classifies %j as %s', (sql, cls) => {
    expect(one(sql).statementClass).toBe(cls);
  });

  // Settings that change how the server reads SQL text (a backslash in a string, a multi-byte
  // encoding hiding one): only the values the parser assumes are `session`.
  it.each([
    ['SET standard_conforming_strings = off', 'privilege'],
    ['SET LOCAL standard_conforming_strings TO false', 'privilege'],
    ['SET standard_conforming_strings = 0', 'privilege'],
    ['RESET standard_conforming_strings', 'privilege'],
    ['SET standard_conforming_strings TO DEFAULT', 'privilege'],
    ['SET standard_conforming_strings = on', 'session'],
    ['SET standard_conforming_strings = 1', 'session'],
    ["SET client_encoding = 'SJIS'", 'privilege'],
    ["SET NAMES 'GBK'", 'privilege'],
    ["SET client_encoding = 'UTF8'", 'session'],
    ["SET NAMES 'UTF8'", 'session'],
    ['RESET client_encoding', 'session'],
    ["SELECT set_config('standard_conforming_strings', 'off', false)", 'privilege'],
    ["SELECT pg_catalog.set_config(' Client_Encoding ', 'BIG5', true)", 'privilege'],
    ["SELECT set_config(lower('STANDARD_CONFORMING_STRINGS'), 'off', false)", 'privilege'],
    ["SELECT set_config('application_name', 'x', false)", 'session'],
    ["UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'", 'privilege'],
    ["UPDATE pg_catalog.pg_settings SET setting = 'x' WHERE name = 'application_name'", 'privilege'],
    ['SELECT name, setting FROM pg_settings', 'read'],
  ])('classifies %j as %s', (sql, cls) => {
    expect(one(sql).statementClass).toBe(cls);
  });

  it('splits a multi-statement string and keeps each statement text', () => {
    const statements = classifier.classify('SELECT 1; /* c */ DELETE FROM orders WHERE id = 1;\n UPDATE x SET a = 1');
    expect(statements.map((s) => [s.text, s.statementClass])).toEqual([
      ['SELECT 1', 'read'],
      ['DELETE FROM orders WHERE id = 1', 'write'],
      ['UPDATE x SET a = 1', 'write'],
    ]);
    expect(statements[2]!.flags).toContain('updateWithoutWhere');
  });

  it('cuts statement texts on byte offsets, so non-ASCII text stays intact', () => {
    const statements = classifier.classify("SELECT 'ÿé漢'; SELECT 'ok'");
    expect(statements.map((s) => s.text)).toEqual(["SELECT 'ÿé漢'", "SELECT 'ok'"]);
  });

  it('names the tables, schema-qualified, without CTE names', () => {
    expect(one('WITH x AS (SELECT * FROM public.orders) SELECT * FROM x JOIN items i ON true').tables.sort()).toEqual([
      'items',
      'public.orders',
    ]);
    expect(one('DROP TABLE s.t').tables).toEqual(['s.t']);
  });

  it.each([
    ['DELETE FROM t', 'deleteWithoutWhere'],
    ['UPDATE t SET a = 1', 'updateWithoutWhere'],
    ["COPY t TO PROGRAM 'id'", 'copyProgram'],
    ['COPY t FROM STDIN', 'copyFrom'],
    ['SELECT * FROM t FOR UPDATE', 'rowLock'],
    ["DO $$ BEGIN EXECUTE 'x'; END $$", 'dynamicSql'],
    ['SET ROLE x', 'setRole'],
    ['SELECT nextval($1)', 'function:nextval'],
    ['SELECT f(1)', 'unknownFunction:f'],
    ['EXECUTE p', 'unknownPrepared'],
  ])('flags %j with %s', (sql, flag) => {
    expect(one(sql).flags).toContain(flag);
  });

  it('looks inside DO blocks: DDL in the body makes the block DDL, tables are named', () => {
    const s = one('DO $$ BEGIN CREATE TABLE x (a int); INSERT INTO y VALUES (1); END $$');
    expect(s.statementClass).toBe('ddl');
    expect(s.tables.sort()).toEqual(['x', 'y']);
  });

  it('classifies EXECUTE by what the session prepared', () => {
    const prepared = one('PREPARE q AS SELECT * FROM t');
    expect(prepared).toMatchObject({ statementClass: 'read', prepares: 'q' });
    const executed = classifier.classify('EXECUTE q', (name) => (name === 'q' ? prepared : undefined));
    expect(executed[0]!.statementClass).toBe('read');
    expect(one('PREPARE w AS DELETE FROM t').statementClass).toBe('write');
  });

  it('maps output columns to their sources through aliases, derived tables and CTEs', () => {
    expect(one('SELECT email AS e, id FROM users').outputSources).toEqual([['email', 'e'], ['id']]);
    const nested = one('WITH c AS (SELECT email AS x FROM users) SELECT y FROM (SELECT x AS y FROM c) s');
    expect(nested.outputSources?.[0]?.sort()).toEqual(['email', 'x', 'y']);
    expect(one('SELECT * FROM users').outputSources).toBeUndefined();
  });

  it('treats an empty string as no statements', () => {
    expect(classifier.classify('')).toEqual([]);
    expect(classifier.classify(' ; ')).toEqual([]);
  });

  it('answers repeated texts from its cache with the same result', () => {
    const a = classifier.classify('SELECT 42');
    expect(classifier.classify('SELECT 42')).toBe(a);
  });

  it('answers a text that differs from a known one only in literals as a parse would, and the same each time', async () => {
    const uncached = await SqlClassifier.create({ cacheSize: 0 });
    classifier.classify("SELECT email AS e FROM users WHERE id = 1 AND owner = 'a'");
    const text = "SELECT email AS e FROM users WHERE id = 2 AND owner = 'b; DELETE FROM users'";
    const hit = classifier.classify(text);
    expect(hit).toStrictEqual(uncached.classify(text));
    expect(classifier.classify(text)).toBe(hit);
  });
});
