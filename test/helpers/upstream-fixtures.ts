// The hand-written manifests of test/fixtures/upstream-shaped/<folder>/, read as kubectl reads
// them (YAML 1.1: an unquoted On is true) and stored as the apiserver would store them, after the
// generated CRD (strict fields, CEL) and, when given, the hook's TypeBox schema accepted them.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Test } from 'tap';
import { parse } from 'yaml';
import { loadCrdValidators, type CrdValidator } from './crd-validator.js';

type Json = Record<string, unknown>;

const CRD_DIR = fileURLToPath(new URL('../../manifests/crds/', import.meta.url));

export interface UpstreamFixtures {
  dir: URL;
  /** Every .yaml of the folder, sorted. */
  files: string[];
  crd: CrdValidator;
  manifest(name: string): Json;
  /** Validated (asserted when `t` is given), pruned and defaulted. */
  stored(object: Json, t?: Test): Json;
}

export function upstreamFixtures(kind: string, folder: string, schema?: TSchema): UpstreamFixtures {
  const dir = new URL(`../fixtures/upstream-shaped/${folder}/`, import.meta.url);
  const crd = loadCrdValidators(CRD_DIR).get(kind);
  if (!crd) throw new Error(`no ${kind} CRD in manifests/crds`);
  return {
    dir,
    files: readdirSync(dir).filter((name) => name.endsWith('.yaml')).sort(),
    crd,
    manifest: (name) => parse(readFileSync(new URL(name, dir), 'utf8'), { version: '1.1' }) as Json,
    stored(object, t) {
      if (t) t.same(crd.validate(object), [], `${String((object['metadata'] as Json | undefined)?.['name'])}: the CRD accepts it as written`);
      const kept = crd.prune(object) as Json;
      if (t && schema) t.ok(Value.Check(schema, kept), 'the TypeBox schema accepts it');
      return kept;
    },
  };
}
