// Structural validation of Warden manifests against the OpenAPI v3 schemas of crds/ — what the API
// server checks before anything else (types, required fields, enums, bounds, patterns, unknown
// fields as `kubectl apply` rejects them with strict field validation). The CEL rules
// (x-kubernetes-validations) need a CEL interpreter and are not run here; the policy compiler and
// the sidecar configuration validation catch most of what they guard.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  items?: SchemaNode;
  required?: string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

export interface SchemaIssue {
  /** Path from the document root, e.g. ['spec', 'target', 'port']. */
  path: (string | number)[];
  message: string;
}

const CRD_DIR = fileURLToPath(new URL('../../crds/', import.meta.url));

let cached: Map<string, SchemaNode> | undefined;

/** The v1alpha1 schema of each kind in crds/, by kind. */
export function crdSchemas(dir: string = CRD_DIR): Map<string, SchemaNode> {
  if (cached && dir === CRD_DIR) return cached;
  const schemas = new Map<string, SchemaNode>();
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    // An install without crds/ (the container image ships src/ only): no structural checks; the
    // sidecar configuration validation and the policy compiler still run.
    files = [];
  }
  for (const file of files.filter((f) => f.endsWith('.yaml')).sort()) {
    const crd = parse(readFileSync(join(dir, file), 'utf8')) as {
      kind?: string;
      spec?: { names?: { kind?: string }; versions?: Array<{ name?: string; schema?: { openAPIV3Schema?: SchemaNode } }> };
    };
    if (crd.kind !== 'CustomResourceDefinition') continue;
    const kind = crd.spec?.names?.kind;
    const schema = crd.spec?.versions?.find((v) => v.name === 'v1alpha1')?.schema?.openAPIV3Schema;
    if (kind && schema) schemas.set(kind, schema);
  }
  if (dir === CRD_DIR) cached = schemas;
  return schemas;
}

export function formatPath(path: readonly (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

function typeMatches(type: string, value: unknown): boolean {
  switch (type) {
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    default:
      return true;
  }
}

/** Every structural problem of `value` against `schema` (status and metadata internals are not checked). */
export function validateAgainstSchema(schema: SchemaNode, value: unknown, path: (string | number)[] = []): SchemaIssue[] {
  const issues: SchemaIssue[] = [];
  const visit = (node: SchemaNode, v: unknown, at: (string | number)[]): void => {
    if (v === null || v === undefined) return;
    if (node['x-kubernetes-int-or-string']) {
      if (typeof v !== 'string' && !(typeof v === 'number' && Number.isInteger(v))) issues.push({ path: at, message: `must be an integer or a string, got ${describe(v)}` });
      return;
    }
    if (node.type && !typeMatches(node.type, v)) {
      const article = /^[aeiou]/.test(node.type) ? 'an' : 'a';
      issues.push({ path: at, message: `must be ${node.type === 'array' ? 'a list' : `${article} ${node.type}`}, got ${describe(v)}` });
      return;
    }
    if (node.enum && !node.enum.includes(v)) {
      issues.push({ path: at, message: `must be one of ${node.enum.map((e) => String(e)).join(', ')}, got ${describe(v)}` });
    }
    if (typeof v === 'number') {
      if (node.minimum !== undefined && v < node.minimum) issues.push({ path: at, message: `must be at least ${node.minimum}, got ${v}` });
      if (node.maximum !== undefined && v > node.maximum) issues.push({ path: at, message: `must be at most ${node.maximum}, got ${v}` });
    }
    if (typeof v === 'string') {
      if (node.minLength !== undefined && v.length < node.minLength) issues.push({ path: at, message: node.minLength === 1 ? 'must not be empty' : `must be at least ${node.minLength} characters long` });
      if (node.maxLength !== undefined && v.length > node.maxLength) issues.push({ path: at, message: `must be at most ${node.maxLength} characters long` });
      if (node.pattern !== undefined) {
        let re: RegExp | undefined;
        try {
          re = new RegExp(node.pattern, 'u');
        } catch {
          re = undefined;
        }
        if (re && !re.test(v)) issues.push({ path: at, message: `${describe(v)} does not match the pattern ${node.pattern}` });
      }
    }
    if (Array.isArray(v)) {
      if (node.minItems !== undefined && v.length < node.minItems) issues.push({ path: at, message: `needs at least ${node.minItems} item${node.minItems === 1 ? '' : 's'}` });
      if (node.maxItems !== undefined && v.length > node.maxItems) issues.push({ path: at, message: `has more than ${node.maxItems} items` });
      if (node.items) v.forEach((item, i) => visit(node.items as SchemaNode, item, [...at, i]));
      return;
    }
    if (typeof v === 'object') {
      const obj = v as Record<string, unknown>;
      for (const name of node.required ?? []) {
        if (obj[name] === undefined) issues.push({ path: [...at, name], message: 'is required' });
      }
      if (node.properties) {
        for (const [name, child] of Object.entries(obj)) {
          const prop = node.properties[name];
          if (prop) visit(prop, child, [...at, name]);
          else if (node['x-kubernetes-preserve-unknown-fields'] !== true && node.additionalProperties === undefined) {
            const known = Object.keys(node.properties);
            issues.push({ path: [...at, name], message: `unknown field (known here: ${known.slice(0, 12).join(', ')}${known.length > 12 ? ', …' : ''})` });
          } else if (typeof node.additionalProperties === 'object') visit(node.additionalProperties, child, [...at, name]);
        }
      } else if (typeof node.additionalProperties === 'object') {
        for (const [name, child] of Object.entries(obj)) visit(node.additionalProperties, child, [...at, name]);
      }
    }
  };
  // metadata is ObjectMeta (the CRD schema says only "type: object"), status is the system's:
  // check the document's own fields only.
  if (typeof value === 'object' && value !== null && schema.properties) {
    const obj = value as Record<string, unknown>;
    for (const name of schema.required ?? []) if (obj[name] === undefined) issues.push({ path: [...path, name], message: 'is required' });
    for (const [name, child] of Object.entries(obj)) {
      if (name === 'status' || name === 'metadata' || name === 'apiVersion' || name === 'kind') continue;
      const prop = schema.properties[name];
      if (prop) visit(prop, child, [...path, name]);
      else issues.push({ path: [...path, name], message: 'unknown field (a manifest has apiVersion, kind, metadata and spec)' });
    }
  } else {
    visit(schema, value, path);
  }
  return issues;
}
