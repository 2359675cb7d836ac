// CEL for x-kubernetes-validations, as the apiserver (Kubernetes 1.26) compiles and runs it.
//
// Two environments per schema node: a typed one, built from the node's schema, that type-checks
// the rule the way the apiserver does at CRD creation (so `self.sise` is a compile error, not a
// silent `false`), and a dynamic one that evaluates it on plain JSON values.
import { Environment, type ASTNode, type ParseResult } from '@marcbachmann/cel-js';

/** One node of a structural OpenAPI v3 schema, with the Kubernetes extensions. */
export interface Schema {
  type?: string;
  description?: string;
  format?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  minProperties?: number;
  maxProperties?: number;
  'x-kubernetes-validations'?: ValidationRule[];
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-map-type'?: string;
  [key: string]: unknown;
}

export interface ValidationRule {
  rule: string;
  message?: string;
  [key: string]: unknown;
}

export interface CompiledRule {
  rule: string;
  message: string;
  /** Mentions oldSelf: runs only on update, where the old value exists. */
  transition: boolean;
  /** undefined when the rule holds, else why not. */
  run(self: unknown, oldSelf: unknown): string | undefined;
}

export type CompileResult = { ok: true; rule: CompiledRule } | { ok: false; error: string };

// The Kubernetes CEL string library (k8s.io/apiserver/pkg/cel/library) beyond what cel-js ships.
// Go's RE2 and JavaScript's RegExp agree on every pattern our rules use.
const kubernetesLibrary = new Environment()
  .registerFunction('string.find(string): string', (s: string, re: string) => new RegExp(re).exec(s)?.[0] ?? '')
  .registerFunction('string.findAll(string): list<string>', (s: string, re: string) =>
    [...s.matchAll(new RegExp(re, 'g'))].map((m) => m[0]),
  )
  .registerFunction('string.findAll(string, int): list<string>', (s: string, re: string, n: bigint) => {
    const all = [...s.matchAll(new RegExp(re, 'g'))].map((m) => m[0]);
    return n < 0n ? all : all.slice(0, Number(n));
  })
  .registerFunction('string.replace(string, string): string', (s: string, a: string, b: string) => s.split(a).join(b))
  .registerFunction('string.replace(string, string, int): string', (s: string, a: string, b: string, n: bigint) => {
    const parts = s.split(a);
    if (n < 0n || parts.length - 1 <= Number(n)) return parts.join(b);
    return parts.slice(0, Number(n) + 1).join(b) + a + parts.slice(Number(n) + 1).join(a);
  });

const dynamicEnv = kubernetesLibrary.clone().registerVariable('self', 'dyn').registerVariable('oldSelf', 'dyn');

/**
 * The apiserver's view of CEL types (apiextensions SchemaDeclType): int-or-string is dyn; an
 * untyped node (x-kubernetes-preserve-unknown-fields without a type) has no CEL type at all — a
 * parent's object type leaves it out and a rule on it cannot compile; a typed object that
 * preserves unknown fields exposes only its declared properties.
 */
const hiddenFromCel = (s: Schema) => s.type === undefined && s['x-kubernetes-int-or-string'] !== true;

/** Declares the CEL type of `schema` in `env` (object types get generated names) and returns its name. */
function declareType(env: Environment, schema: Schema, names: { next: number }, root: boolean): string {
  if (schema['x-kubernetes-int-or-string'] === true) return 'dyn';
  if (schema.type === undefined) throw new Error('unable to convert structural schema to CEL declarations: the node has no type');
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'integer':
      return 'int';
    case 'number':
      return 'double';
    case 'boolean':
      return 'bool';
    case 'array':
      return `list<${schema.items ? declareType(env, schema.items, names, false) : 'dyn'}>`;
    case 'object': {
      if (typeof schema.additionalProperties === 'object') {
        return `map<string, ${declareType(env, schema.additionalProperties, names, false)}>`;
      }
      const fields: Record<string, string> = {};
      for (const [name, child] of Object.entries(schema.properties ?? {})) {
        if (hiddenFromCel(child)) continue;
        // At the root, only metadata.name and metadata.generateName are visible to rules.
        fields[name] =
          root && name === 'metadata'
            ? declareType(env, { type: 'object', properties: { name: { type: 'string' }, generateName: { type: 'string' } } }, names, false)
            : declareType(env, child, names, false);
      }
      const typeName = `Object${names.next++}`;
      // A constructor keeps cel-js from building converters: this environment only type-checks.
      env.registerType(typeName, { ctor: class {}, fields });
      env.registerOperator(`${typeName} == ${typeName}`, () => false);
      return typeName;
    }
    default:
      return 'dyn';
  }
}

function walk(node: unknown, visit: (node: ASTNode) => void): void {
  if (Array.isArray(node)) {
    for (const child of node) walk(child, visit);
  } else if (node !== null && typeof node === 'object' && 'op' in node && 'args' in node) {
    visit(node as ASTNode);
    walk((node as ASTNode).args, visit);
  }
}

/**
 * cel-js does not check the field named in `has(x.f)`; the apiserver does. Rewrite each
 * `has(x.f)` as `([x.f].size() >= 0)`, a bool that type-checks exactly when `x.f` does.
 */
function hasCallsTypeCheckable(rule: string, ast: ASTNode): string {
  const ranges: { start: number; end: number; arg: string }[] = [];
  walk(ast, (node) => {
    if (node.op !== 'call') return;
    const [name, args] = node.args as [string, ASTNode[]];
    const arg = args[0];
    if (name === 'has' && args.length === 1 && arg) {
      ranges.push({ start: node.start, end: node.end, arg: rule.slice(arg.start, arg.end) });
    }
  });
  let text = rule;
  for (const r of ranges.sort((a, b) => b.start - a.start)) {
    text = `${text.slice(0, r.start)}([${r.arg}].size() >= 0)${text.slice(r.end)}`;
  }
  return text;
}

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';

/** Compiles one rule at a schema node; `root` is true for the openAPIV3Schema itself. */
export function compileRule(rule: ValidationRule, schema: Schema, root = false): CompileResult {
  const typed = kubernetesLibrary.clone();
  let selfType: string;
  try {
    selfType = declareType(typed, schema, { next: 0 }, root);
  } catch (e) {
    return { ok: false, error: `failed to construct type information for x-kubernetes-validations rules: ${firstLine(e)}` };
  }
  typed.registerVariable('self', selfType).registerVariable('oldSelf', selfType);
  let evaluate: ParseResult;
  let transition = false;
  try {
    evaluate = dynamicEnv.parse(rule.rule);
    walk(evaluate.ast, (node) => {
      if (node.op === 'id' && node.args === 'oldSelf') transition = true;
    });
    const checked = typed.check(hasCallsTypeCheckable(rule.rule, evaluate.ast));
    if (!checked.valid) return { ok: false, error: `compilation failed: ${firstLine(checked.error)}` };
    if (checked.type !== 'bool') return { ok: false, error: `compilation failed: rule returns ${checked.type}, not bool` };
  } catch (e) {
    return { ok: false, error: `compilation failed: ${firstLine(e)}` };
  }
  const message = rule.message ?? `failed rule: ${rule.rule}`;
  return {
    ok: true,
    rule: {
      rule: rule.rule,
      message,
      transition,
      run(self, oldSelf) {
        try {
          const result: unknown = evaluate({ self: toCel(self, schema), oldSelf: toCel(oldSelf, schema) });
          if (result === true) return undefined;
          return result === false ? message : `rule returned ${String(result)}, not bool`;
        } catch (e) {
          return `error evaluating rule "${rule.rule}": ${firstLine(e)}`;
        }
      },
    },
  };
}

/** JSON value → CEL value: integers become int (BigInt) unless the schema says number (double). */
export function toCel(value: unknown, schema: Schema | undefined): unknown {
  if (typeof value === 'number') {
    return Number.isInteger(value) && schema?.type !== 'number' ? BigInt(value) : value;
  }
  if (Array.isArray(value)) return value.map((item) => toCel(item, schema?.items));
  if (value !== null && typeof value === 'object') {
    const additional = typeof schema?.additionalProperties === 'object' ? schema.additionalProperties : undefined;
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, toCel(v, schema?.properties?.[k] ?? additional)]),
    );
  }
  return value;
}
