// Renders helm/virtrigaud with tools/helm-render (Go text/template + sprig, built by .ci/run from
// Debian's packages) and reads the output the way kubectl does (YAML 1.1).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export type Json = Record<string, any>;

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CHART = join(ROOT, 'helm/virtrigaud');
export const RENDERER = join(ROOT, 'tools/helm-render/bin/helm-render');

/**
 * Why the chart tests do not run, or undefined when they do. A missing renderer is an error (the
 * tests fail with this message), not a skip: only VIRTRIGAUD_SKIP_HELM=1 skips them.
 */
export const SKIP_HELM =
  process.env['VIRTRIGAUD_SKIP_HELM'] === '1'
    ? 'SKIPPED: VIRTRIGAUD_SKIP_HELM=1 — the Helm chart is NOT tested in this run (build tools/helm-render with `npm run helm:renderer` to test it)'
    : undefined;
if (SKIP_HELM) console.error(`\n*** ${SKIP_HELM} ***\n`);

const MISSING =
  `${RENDERER} is missing: build it with \`npm run helm:renderer\` (needs Debian's golang-go, ` +
  'golang-github-masterminds-sprig-dev and golang-k8s-sigs-yaml-dev; .ci/run installs them), ' +
  'or set VIRTRIGAUD_SKIP_HELM=1 to skip the chart tests';

export interface RenderedObject extends Json {
  /** The template it came from, from the renderer's `# Source:` line. */
  readonly source: string;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** --set expressions. */
  set?: string[];
  /** Any further renderer arguments. */
  args?: string[];
}

export interface RenderResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runRenderer(args: string[], binary = RENDERER): RenderResult {
  if (!existsSync(binary)) throw new Error(MISSING.replace(RENDERER, binary));
  const result = spawnSync(binary, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export function chartArgs(options: RenderOptions = {}): string[] {
  return [
    options.release ?? 'virtrigaud',
    CHART,
    '--namespace',
    options.namespace ?? 'virtrigaud-system',
    ...(options.set ?? []).flatMap((expr) => ['--set', expr]),
    ...(options.args ?? []),
  ];
}

/** The rendered objects; throws with the renderer's message when it fails. */
export function renderChart(options: RenderOptions = {}): RenderedObject[] {
  const result = runRenderer(chartArgs(options));
  if (result.status !== 0) throw new Error(`helm-render failed (${result.status}): ${result.stderr}`);
  return parseStream(result.stdout);
}

/** The renderer's error for values the chart must refuse. */
export function renderError(options: RenderOptions): string {
  const result = runRenderer(chartArgs(options));
  if (result.status === 0) throw new Error(`helm-render succeeded with ${JSON.stringify(options)}; expected a failure`);
  return result.stderr;
}

/** A `---`-separated stream as objects, each tagged with its `# Source:` template. */
export function parseStream(text: string): RenderedObject[] {
  return parseAllDocuments(text, { version: '1.1' }).map((doc, i) => {
    const [error] = doc.errors;
    if (error) throw new Error(`document ${i}: ${error.message}`);
    // The `# Source:` line after `---` is the comment before the document's contents.
    const comments = `${doc.commentBefore ?? ''}\n${(doc.contents as { commentBefore?: string | null } | null)?.commentBefore ?? ''}`;
    const source = /^\s*Source: (.+)$/m.exec(comments)?.[1] ?? '';
    const value = doc.toJS() as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error(`document ${i} (${source}) is not a mapping`);
    }
    return Object.defineProperty(value as Json, 'source', { value: source, enumerable: false }) as RenderedObject;
  });
}

export function ofKind(objects: RenderedObject[], kind: string): RenderedObject[] {
  return objects.filter((object) => object['kind'] === kind);
}

export function one(objects: RenderedObject[], kind: string, name?: string): RenderedObject {
  const found = ofKind(objects, kind).filter((object) => name === undefined || object['metadata']?.['name'] === name);
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as RenderedObject;
}

/** Whether a matchLabels selector selects these labels. */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  const wanted = Object.entries(selector ?? {});
  return wanted.length > 0 && wanted.every(([key, value]) => labels?.[key] === value);
}
