// A Metacontroller (CompositeController) stand-in that drives the real hook server over HTTP
// against a FakeCluster, in fake time. It follows CONTRACT.md §3.1: one queue item = one sync of
// one parent, processed one at a time, so runs are deterministic.
import { Agent } from 'undici';
import type { TSchema } from '@sinclair/typebox';
import {
  CustomizeResponse,
  SyncResponse,
  type SyncResponse as SyncResponseBody,
} from '../../src/contracts/metacontroller.js';
import type { FakeClock } from '../helpers/clock.js';
import { ApiError, deepEqual, type FakeCluster, type JsonObject, type KubeObject, type WatchEvent } from './cluster.js';
import {
  ResourceTypes,
  at,
  objectKey,
  ruleIssues,
  ruleMatches,
  selectorMatches,
  typeKey,
  type LabelSelector,
  type RelatedRule,
  type ResourceType,
} from './resources.js';
import { applyChildren, prepareChildren } from './children.js';
import { metadataChanged, parseController, type Controller, type HookName } from './controller.js';
import { WorkQueue } from './queue.js';
import { HookFailure, RetryLater, SyncFailure, callWebhook } from './webhook.js';

export interface HookCall {
  controller: string;
  hook: HookName;
  parent: { namespace?: string; name: string };
  request: unknown;
  /** 0 when no HTTP answer arrived (timeout, connection error). */
  statusCode: number;
  /** Parsed JSON, or the raw text when the body was not JSON. */
  response: unknown;
  at: number;
}

export interface SyncErrorEvent {
  controller: string;
  parent: string;
  type: 'Warning';
  reason: 'SyncError';
  message: string;
  at: number;
}

export interface StandInOptions {
  cluster: FakeCluster;
  clock: FakeClock;
  baseUrl: string;
  controllers: object[];
  crds: object[];
  keyStyle?: 'v1' | 'v2';
  requestTimeoutMs?: number;
}

interface Item {
  controller: Controller;
  namespace: string | undefined;
  name: string;
}

interface CustomizeEntry {
  item: Item;
  uid: string;
  generation: number | undefined;
  rules: { rule: RelatedRule; type: ResourceType }[];
  fetchedAt: number;
}

const CUSTOMIZE_CACHE_MS = 20 * 60 * 1000;

export class MetacontrollerStandIn {
  readonly calls: HookCall[] = [];
  readonly events: SyncErrorEvent[] = [];
  /** Things Metacontroller tolerates but our hooks must never do; any entry fails runDue. */
  readonly violations: string[] = [];

  readonly #cluster: FakeCluster;
  readonly #clock: FakeClock;
  readonly #baseUrl: string;
  readonly #types: ResourceTypes;
  readonly #controllers: Controller[];
  readonly #keyStyle: 'v1' | 'v2';
  readonly #timeoutMs: number;
  readonly #agent = new Agent({ keepAliveTimeout: 1000 });
  readonly #unwatch: () => void;
  readonly #queue = new WorkQueue<Item>();
  readonly #periodic = new Map<Controller, number>();
  readonly #customize = new Map<string, CustomizeEntry>();
  #running = false;
  /** Called after every single sync: a test's invariant checks see every state the cluster passes through. */
  afterEachSync: (() => void) | undefined;

  constructor(options: StandInOptions) {
    this.#cluster = options.cluster;
    this.#clock = options.clock;
    this.#baseUrl = options.baseUrl;
    this.#types = new ResourceTypes(options.crds);
    this.#keyStyle = options.keyStyle ?? 'v2';
    this.#timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#controllers = options.controllers.map((object) => parseController(object, this.#types));
    for (const c of this.#controllers) {
      if (c.resyncPeriodMs !== undefined) this.#periodic.set(c, this.#clock.now() + c.resyncPeriodMs);
      // Informer start-up: every existing parent gets a sync.
      for (const parent of this.#cluster.list(c.parent.apiVersion, c.parent.kind)) {
        this.#enqueue(c, parent.metadata.namespace, parent.metadata.name);
      }
    }
    this.#unwatch = this.#cluster.watch((event) => this.#onEvent(event));
  }

  /** Processes everything due now until the queue is empty or maxSyncs is hit; returns the syncs run. */
  async runDue(options: { maxSyncs?: number } = {}): Promise<number> {
    if (this.#running) throw new Error('runDue is already running (a missing await?)');
    this.#running = true;
    let syncs = 0;
    try {
      while (syncs < (options.maxSyncs ?? 1000)) {
        this.#promoteDue();
        const next = this.#queue.pop();
        if (!next) break;
        const [key, item] = next;
        const violationsBefore = this.violations.length;
        await this.#process(key, item);
        syncs++;
        this.afterEachSync?.();
        if (this.violations.length > violationsBefore) {
          throw new Error(`Metacontroller protocol violation: ${this.violations.slice(violationsBefore).join('; ')}`);
        }
      }
    } finally {
      this.#running = false;
    }
    return syncs;
  }

  /** Runs due work and jumps the clock to the next scheduled resync until predicate() holds. */
  async settle(predicate: () => boolean, options: { maxFakeMs?: number; maxSyncs?: number } = {}): Promise<void> {
    const maxFakeMs = options.maxFakeMs ?? 60 * 60 * 1000;
    const maxSyncs = options.maxSyncs ?? 1000;
    const start = this.#clock.now();
    let syncs = 0;
    const fail = (why: string) => new Error(this.#report(`settle: ${why}`, start, syncs));
    for (;;) {
      syncs += await this.runDue({ maxSyncs: maxSyncs - syncs });
      if (this.#queue.busy) throw fail(`still busy after ${syncs} syncs (a hot loop?)`);
      if (predicate()) return;
      // Without this, a spent budget would let the loop below jump the clock forever without a sync.
      if (syncs >= maxSyncs) throw fail(`predicate not reached within ${maxSyncs} syncs`);
      const next = this.#nextDue();
      if (next === undefined) throw fail('predicate not reached and nothing is queued or scheduled');
      if (next > start + maxFakeMs) throw fail(`predicate not reached within ${maxFakeMs} ms of fake time`);
      this.#clock.set(Math.max(next, this.#clock.now()));
    }
  }

  /** Advances the fake clock by ms, running whatever becomes due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.#clock.now() + ms;
    for (;;) {
      await this.runDue();
      if (this.#queue.busy) throw new Error(this.#report('advance: still busy (a hot loop?)', this.#clock.now(), 0));
      const next = this.#nextDue();
      if (next === undefined || next > target) break;
      this.#clock.set(Math.max(next, this.#clock.now()));
    }
    this.#clock.set(target);
    await this.runDue();
  }

  stop(): void {
    this.#unwatch();
    void this.#agent.close();
  }

  #itemKey(c: Controller, namespace: string | undefined, name: string): string {
    return `${c.name}:${namespace ?? ''}/${name}`;
  }

  #enqueue(c: Controller, namespace: string | undefined, name: string, delayMs = 0): void {
    this.#queue.add(this.#itemKey(c, namespace, name), { controller: c, namespace, name }, this.#clock.now(), delayMs);
  }

  #promoteDue(): void {
    const now = this.#clock.now();
    for (const [c, due] of this.#periodic) {
      if (due > now || c.resyncPeriodMs === undefined) continue;
      for (const parent of this.#cluster.list(c.parent.apiVersion, c.parent.kind)) {
        this.#enqueue(c, parent.metadata.namespace, parent.metadata.name);
      }
      this.#periodic.set(c, due + Math.ceil((now - due + 1) / c.resyncPeriodMs) * c.resyncPeriodMs);
    }
    this.#queue.promote(now);
  }

  #nextDue(): number | undefined {
    const queued = this.#queue.nextDue();
    const times = [...(queued === undefined ? [] : [queued]), ...this.#periodic.values()];
    return times.length === 0 ? undefined : Math.min(...times);
  }

  #onEvent({ type, object, oldObject }: WatchEvent): void {
    for (const c of this.#controllers) {
      if (object.apiVersion === c.parent.apiVersion && object.kind === c.parent.kind) {
        const { namespace, name } = object.metadata;
        if (type === 'DELETED') {
          this.#customize.delete(this.#itemKey(c, namespace, name));
          this.#queue.forget(this.#itemKey(c, namespace, name));
        }
        if (!(c.ignoreStatusChanges && type === 'MODIFIED' && oldObject && !metadataChanged(oldObject, object))) {
          this.#enqueue(c, namespace, name);
        }
      }
      const owner = object.metadata.ownerReferences?.find((ref) => ref.controller === true);
      const isChildType = c.children.some((t) => t.type.apiVersion === object.apiVersion && t.type.kind === object.kind);
      if (owner && isChildType && owner.kind === c.parent.kind && owner.apiVersion === c.parent.apiVersion) {
        this.#enqueue(c, c.parent.namespaced ? object.metadata.namespace : undefined, owner.name);
      }
    }
    for (const entry of this.#customize.values()) {
      const matches = (o: KubeObject) =>
        entry.rules.some(({ rule, type: t }) => ruleMatches(this.#cluster, t, rule, entry.item.namespace, o));
      if (matches(object) || (oldObject !== undefined && matches(oldObject))) {
        this.#enqueue(entry.item.controller, entry.item.namespace, entry.item.name);
      }
    }
  }

  async #process(key: string, item: Item): Promise<void> {
    try {
      await this.#syncParent(key, item);
      this.#queue.forget(key);
    } catch (error) {
      if (error instanceof RetryLater) {
        this.#enqueue(item.controller, item.namespace, item.name, error.delayMs ?? this.#queue.backoffMs(key));
        return;
      }
      // Anything else is a bug in the harness, not something Metacontroller would shrug off.
      if (!(error instanceof SyncFailure || error instanceof ApiError)) throw error;
      this.events.push({
        controller: item.controller.name,
        parent: `${item.namespace ? `${item.namespace}/` : ''}${item.name}`,
        type: 'Warning',
        reason: 'SyncError',
        message: error instanceof Error ? error.message : String(error),
        at: this.#clock.now(),
      });
      this.#queue.addRateLimited(key, item, this.#clock.now());
    }
  }

  /** CONTRACT.md §3.1, steps 1–10. */
  async #syncParent(key: string, item: Item): Promise<void> {
    const c = item.controller;
    const { apiVersion, kind } = c.parent;
    let parent = this.#cluster.get(apiVersion, kind, item.namespace, item.name);
    if (!parent) return;
    const finalizer = c.finalizer;
    const hasFinalizer = (o: KubeObject | undefined) => (o?.metadata.finalizers ?? []).includes(finalizer);
    const selected = selectorMatches(c.parentSelector, parent.metadata.labels);
    if (!selected && !hasFinalizer(parent)) return;
    const deleting = parent.metadata.deletionTimestamp !== undefined || !selected;

    if (c.hooks.finalize && !deleting && !hasFinalizer(parent)) {
      const finalizers = [...(parent.metadata.finalizers ?? []), finalizer];
      parent = this.#cluster.update({ ...parent, metadata: { ...parent.metadata, finalizers } });
    } else if (!c.hooks.finalize && hasFinalizer(parent)) {
      this.#cluster.removeFinalizer(apiVersion, kind, item.namespace, item.name, finalizer);
      parent = this.#cluster.get(apiVersion, kind, item.namespace, item.name);
      if (!parent) return;
    }

    const observed = this.#observedChildren(c, parent);
    const related = await this.#related(key, item, parent);
    const finalizing = deleting && c.hooks.finalize !== undefined;
    const hook = finalizing ? 'finalize' : 'sync';
    const children: Record<string, Record<string, KubeObject>> = {};
    for (const { type } of c.children) {
      const byKey: Record<string, KubeObject> = {};
      for (const child of observed.get(type) ?? []) byKey[objectKey(this.#keyStyle, c.parent.namespaced, child)] = child;
      children[typeKey(type)] = byKey;
    }
    const body = { controller: c.object, parent, children, related, finalizing };
    const response = (await this.#call(c, hook, parent, body, SyncResponse)) as SyncResponseBody;

    if ((response.resyncAfterSeconds ?? 0) > 0) {
      this.#enqueue(c, item.namespace, item.name, (response.resyncAfterSeconds ?? 0) * 1000);
    }
    if (response.finalized === true) {
      if (!finalizing) this.violations.push(`${c.name} ${hook} for ${key} answered finalized: true outside a finalize call`);
      this.#cluster.removeFinalizer(apiVersion, kind, item.namespace, item.name, finalizer);
    }

    const desired = prepareChildren(this.#types, c, parent, response.children as KubeObject[], this.violations);
    const live = this.#cluster.get(apiVersion, kind, item.namespace, item.name);
    let childError: unknown;
    if (live && (live.metadata.deletionTimestamp === undefined || hasFinalizer(live))) {
      try {
        applyChildren(this.#cluster, c, observed, desired);
      } catch (error) {
        childError = error;
      }
    }
    const current = this.#cluster.get(apiVersion, kind, item.namespace, item.name);
    if (current) {
      const status = { ...response.status, observedGeneration: parent.metadata.generation };
      if (!deepEqual(current.status, status)) this.#cluster.updateStatus(apiVersion, kind, item.namespace, item.name, status);
    }
    if (childError !== undefined) throw childError;
  }

  /** Owned children (controller ownerReference to this uid) that match the parent's selector. */
  #observedChildren(c: Controller, parent: KubeObject): Map<ResourceType, KubeObject[]> {
    const uid = parent.metadata.uid;
    const selector = c.generateSelector
      ? { matchLabels: { 'controller-uid': String(uid) } }
      : (at(parent, 'spec', 'selector') as LabelSelector | undefined);
    const result = new Map<ResourceType, KubeObject[]>();
    for (const { type } of c.children) {
      const namespace = c.parent.namespaced && type.namespaced ? parent.metadata.namespace : undefined;
      const owned = this.#cluster.list(type.apiVersion, type.kind, namespace).filter(
        (o) =>
          (o.metadata.ownerReferences ?? []).some((ref) => ref.controller === true && ref.uid === uid) &&
          selectorMatches(selector, o.metadata.labels),
      );
      result.set(type, owned);
    }
    return result;
  }

  /** CONTRACT.md §3.7: customize cached per (uid, generation) for 20 min, objects resolved each sync. */
  async #related(key: string, item: Item, parent: KubeObject): Promise<Record<string, Record<string, KubeObject>>> {
    const c = item.controller;
    if (!c.hooks.customize) return {};
    const { uid = '', generation } = parent.metadata;
    let entry = this.#customize.get(key);
    const fresh = entry && entry.uid === uid && entry.generation === generation && this.#clock.now() - entry.fetchedAt < CUSTOMIZE_CACHE_MS;
    if (!entry || !fresh) {
      const response = (await this.#call(c, 'customize', parent, { controller: c.object, parent }, CustomizeResponse)) as {
        relatedResources: RelatedRule[];
      };
      const rules = response.relatedResources.map((rule) => {
        let type: ResourceType;
        try {
          type = this.#types.byResource(rule.apiVersion, rule.resource);
        } catch (error) {
          throw new HookFailure(`customize: ${error instanceof Error ? error.message : String(error)}`);
        }
        const issues = ruleIssues(rule, type);
        if (issues.length > 0) throw new HookFailure(`customize: invalid relatedResources rule: ${issues.join('; ')}`);
        return { rule, type };
      });
      entry = { item, uid, generation, rules, fetchedAt: this.#clock.now() };
      this.#customize.set(key, entry);
    }
    const related: Record<string, Record<string, KubeObject>> = {};
    for (const { rule, type } of entry.rules) {
      const byKey = (related[typeKey(type)] ??= {});
      for (const object of this.#cluster.list(type.apiVersion, type.kind)) {
        if (ruleMatches(this.#cluster, type, rule, parent.metadata.namespace, object)) {
          byKey[objectKey(this.#keyStyle, c.parent.namespaced, object)] = object;
        }
      }
    }
    return related;
  }

  async #call(c: Controller, hook: HookName, parent: KubeObject, body: object, schema: TSchema): Promise<unknown> {
    const { namespace, name } = parent.metadata;
    const call: HookCall = {
      controller: c.name,
      hook,
      parent: namespace === undefined ? { name } : { namespace, name },
      request: structuredClone(body),
      statusCode: 0,
      response: undefined,
      at: this.#clock.now(),
    };
    this.calls.push(call);
    return callWebhook({
      url: new URL(c.hooks[hook] ?? '/', this.#baseUrl),
      hook,
      body,
      schema,
      timeoutMs: this.#timeoutMs,
      dispatcher: this.#agent,
      now: this.#clock.now(),
      record: (answer) => Object.assign(call, answer),
    });
  }

  #report(headline: string, start: number, syncs: number): string {
    const lines = [`${headline} (fake time +${this.#clock.now() - start} ms, ${syncs} syncs)`];
    if (this.violations.length > 0) lines.push('protocol violations:', ...this.violations.map((v) => `  ${v}`));
    const events = this.events.slice(-5);
    if (events.length > 0) lines.push('last SyncError events:', ...events.map((e) => `  ${e.controller} ${e.parent}: ${clip(e.message)}`));
    const calls = this.calls.slice(-8);
    lines.push(`last hook calls (${this.calls.length} in all):`);
    for (const call of calls) {
      const who = `${call.parent.namespace ? `${call.parent.namespace}/` : ''}${call.parent.name}`;
      lines.push(`  +${call.at - start} ms ${call.controller} ${call.hook} ${who} → ${call.statusCode} ${clip(JSON.stringify(call.response))}`);
    }
    const seen = new Set<string>();
    for (const call of calls) {
      const c = this.#controllers.find((x) => x.name === call.controller);
      const id = `${call.controller}:${call.parent.namespace ?? ''}/${call.parent.name}`;
      if (!c || seen.has(id)) continue;
      seen.add(id);
      const live = this.#cluster.get(c.parent.apiVersion, c.parent.kind, call.parent.namespace, call.parent.name);
      lines.push(`status of ${c.parent.kind} ${id}: ${live ? clip(JSON.stringify(live.status ?? null), 600) : '(gone)'}`);
    }
    return lines.join('\n');
  }
}

function clip(text: string | undefined, max = 300): string {
  if (text === undefined) return 'undefined';
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
