// A run's report: a table for people, JSON (or YAML) and JUnit XML for CI systems.
import type { CaseCapability } from '../../conformance/index.js';
import { serialize, table } from '../common.js';
import type { ReportFormat } from './options.js';

export type CaseOutcome = 'verified' | 'unsupported' | 'skipped' | 'failed';

export interface CaseResult {
  id: string;
  title: string;
  capability: CaseCapability;
  destructive: boolean;
  result: CaseOutcome;
  /** Why it failed, is unsupported or was skipped; one line. */
  reason?: string;
  seconds: number;
}

export interface RunReport {
  tool: 'vcts';
  target: { driver: string; where: string; version?: string };
  run: {
    /** The run's UUID: the UIDs of the run's identities share its first 24 characters. */
    uid: string;
    /** Every VM name and owner name of the run starts with it; the owner namespace is `vcts`. */
    prefix: string;
    namespace: string;
    startedAt: string;
    finishedAt: string;
    interrupted?: string;
  };
  summary: Record<CaseOutcome, number> & { cases: number };
  cases: CaseResult[];
  cleanup: { removed: string[]; left: string[] };
}

export function summarize(cases: readonly CaseResult[]): RunReport['summary'] {
  const count = (result: CaseOutcome) => cases.filter((entry) => entry.result === result).length;
  return { cases: cases.length, verified: count('verified'), unsupported: count('unsupported'), skipped: count('skipped'), failed: count('failed') };
}

export const seconds = (value: number): string => `${value.toFixed(1)} s`;

function tableReport(report: RunReport): string {
  const rows = report.cases.map((entry) => [entry.id, entry.capability, entry.result, seconds(entry.seconds), entry.reason ?? '']);
  const { summary } = report;
  const lines = [
    table(['CASE', 'CAPABILITY', 'RESULT', 'TIME', 'REASON'], rows).trimEnd(),
    '',
    `${summary.cases} cases: ${summary.verified} verified, ${summary.unsupported} unsupported, ${summary.skipped} skipped, ${summary.failed} failed` +
      ` — ${report.target.driver}${report.target.version === undefined ? '' : ` ${report.target.version}`}, run ${report.run.uid}, VMs named ${report.run.prefix}*`,
  ];
  if (report.run.interrupted !== undefined) lines.push(`interrupted by ${report.run.interrupted}`);
  for (const left of report.cleanup.left) lines.push(`left behind: ${left}`);
  return `${lines.join('\n')}\n`;
}

/** Characters XML 1.0 cannot hold at all go; the rest is escaped. */
function xml(text: string): string {
  return text
    .replace(/[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu, '\ufffd')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

const attributes = (values: Record<string, string | number>): string =>
  Object.entries(values)
    .map(([name, value]) => ` ${name}="${xml(String(value))}"`)
    .join('');

/** JUnit XML as Jenkins, GitLab and GitHub reporters read it: one testcase per case. */
function junitReport(report: RunReport): string {
  const { summary } = report;
  const total = report.cases.reduce((sum, entry) => sum + entry.seconds, 0).toFixed(3);
  const counts = { tests: summary.cases, failures: summary.failed, errors: 0, skipped: summary.unsupported + summary.skipped, time: total };
  const suite = `vcts.${report.target.driver}`;
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites${attributes({ name: 'vcts', ...counts })}>`];
  lines.push(`  <testsuite${attributes({ name: suite, ...counts, timestamp: report.run.startedAt })}>`);
  lines.push('    <properties>');
  const properties: Record<string, string> = { run: report.run.uid, prefix: report.run.prefix, namespace: report.run.namespace, where: report.target.where };
  if (report.target.version !== undefined) properties['version'] = report.target.version;
  if (report.run.interrupted !== undefined) properties['interrupted'] = report.run.interrupted;
  for (const [name, value] of Object.entries(properties)) lines.push(`      <property${attributes({ name, value })}/>`);
  lines.push('    </properties>');
  for (const entry of report.cases) {
    const head = `    <testcase${attributes({ classname: `${suite}.${entry.capability}`, name: `${entry.id}: ${entry.title}`, time: entry.seconds.toFixed(3) })}`;
    const reason = entry.reason ?? '';
    if (entry.result === 'failed') {
      lines.push(`${head}>`, `      <failure${attributes({ message: reason, type: 'ConformanceFailure' })}>${xml(reason)}</failure>`, '    </testcase>');
    } else if (entry.result === 'unsupported' || entry.result === 'skipped') {
      lines.push(`${head}>`, `      <skipped${attributes({ message: `${entry.result}: ${reason}` })}/>`, '    </testcase>');
    } else {
      lines.push(`${head}/>`);
    }
  }
  if (report.cleanup.left.length > 0) lines.push(`    <system-err>${xml(report.cleanup.left.map((left) => `left behind: ${left}`).join('\n'))}</system-err>`);
  lines.push('  </testsuite>', '</testsuites>');
  return `${lines.join('\n')}\n`;
}

export function formatReport(report: RunReport, format: ReportFormat): string {
  switch (format) {
    case 'table':
      return tableReport(report);
    case 'junit':
      return junitReport(report);
    default:
      return serialize(report, format);
  }
}
