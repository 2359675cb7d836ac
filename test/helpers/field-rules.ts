// The per-rule checks every kind's field-support table gets: a rule is well formed, names a field
// of the kind's spec schema, and an object setting its example is a use naming that field (only
// when normalize read the rule's branch, for rules of one per-hypervisor branch).
import type { TSchema } from '@sinclair/typebox';
import t from 'tap';
import type { FieldRule } from '../../src/contracts/normalize/common.js';
import { fieldUses, type SupportedKind } from '../../src/contracts/support.js';

type Json = Record<string, unknown>;

/** An object with `value` at the dotted `path`. */
export function objectWith(path: string, value: unknown): Json {
  const root: Json = {};
  let node = root;
  const keys = path.split('.');
  keys.slice(0, -1).forEach((key) => {
    node[key] = {};
    node = node[key] as Json;
  });
  node[keys[keys.length - 1] ?? ''] = value;
  return root;
}

/** The schema node at a dotted `spec.…` path of `spec`. */
export function schemaAt(spec: TSchema, path: string): TSchema | undefined {
  let node: TSchema | undefined = spec;
  for (const key of path.split('.').slice(1)) node = (node as { properties?: Record<string, TSchema> } | undefined)?.properties?.[key];
  return node;
}

/** One tap test per rule of `kind`; `spec` is the spec schema with any untyped node read as its object form. */
export function testFieldRules(kind: SupportedKind, rules: readonly FieldRule[], spec: TSchema): void {
  for (const rule of rules) {
    const value = rule.values?.[0] ?? rule.example;
    const label = `${rule.path}${rule.values ? `=${String(rule.values[0])}` : ''}${rule.capability ? ` [${rule.capability}]` : ''}${rule.for ? ` (${rule.for})` : ''}`;
    t.test(`rule ${label}: setting it is a use naming the field`, async (t) => {
      t.ok(rule.values !== undefined || rule.example !== undefined, 'a rule without values has an example');
      t.ok((rule.capability === undefined) !== (rule.why === undefined), 'exactly one of capability and why');
      t.ok(schemaAt(spec, rule.path), 'the path is a field of the spec');
      if (rule.when) t.ok(rule.when.test(value), 'the example passes the rule\'s test');
      const uses = fieldUses(kind, objectWith(rule.path, value), rule.for);
      const path = rule.values !== undefined && typeof value !== 'boolean' ? `${rule.path}=${String(value)}` : rule.path;
      t.ok(
        uses.some((use) => use.path === path && use.capability === rule.capability && use.why === rule.why),
        `${JSON.stringify(uses)} holds ${path}`,
      );
      if (rule.for !== undefined) {
        for (const other of [undefined, 'vsphere', 'libvirt', 'proxmox'] as const) {
          if (other === rule.for) continue;
          t.notOk(
            fieldUses(kind, objectWith(rule.path, value), other).some((use) => use.path === path),
            `skipped when normalize read ${other ?? 'no per-hypervisor branch'}`,
          );
        }
      }
    });
  }
}
