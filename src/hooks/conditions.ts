// Conditions as Kubernetes expects them: one per type, lastTransitionTime moving only when the
// status flips (carried over from the previous status, so a steady sync returns identical bytes).
import { Value } from '@sinclair/typebox/value';
import { Conditions, type Condition } from '../contracts/crds/common.js';
import { rfc3339 } from './time.js';

export interface ConditionUpdate {
  type: string;
  status: boolean | 'Unknown';
  reason: string;
  message: string;
}

export function previousConditions(status: Record<string, unknown> | undefined): Condition[] {
  const conditions = status?.['conditions'];
  return Value.Check(Conditions, conditions) ? conditions : [];
}

/** Condition messages are for people; anything longer is cut, so no input can inflate a status. */
export const MAX_CONDITION_MESSAGE = 2048;

function bounded(message: string): string {
  return message.length <= MAX_CONDITION_MESSAGE ? message : `${message.slice(0, MAX_CONDITION_MESSAGE - 1)}…`;
}

export function buildConditions(
  previous: Condition[],
  updates: ConditionUpdate[],
  now: number,
  generation: number | undefined,
): Condition[] {
  const stamp = rfc3339(now);
  return updates.map((update) => {
    const status = update.status === 'Unknown' ? 'Unknown' : update.status ? 'True' : 'False';
    const before = previous.find((condition) => condition.type === update.type);
    const condition: Condition = {
      type: update.type,
      status,
      reason: update.reason,
      message: bounded(update.message),
      lastTransitionTime: before && before.status === status ? before.lastTransitionTime : stamp,
    };
    if (generation !== undefined) condition.observedGeneration = generation;
    return condition;
  });
}

export function conditionOf(conditions: Condition[], type: string): Condition | undefined {
  return conditions.find((condition) => condition.type === type);
}

/** Ready summarises the others: True when all are, else the first one that is not, by its reason. */
export function readyFrom(updates: ConditionUpdate[], readyReason: string, readyMessage: string): ConditionUpdate {
  const failing = updates.find((update) => update.status !== true);
  if (!failing) return { type: 'Ready', status: true, reason: readyReason, message: readyMessage };
  return { type: 'Ready', status: failing.status === 'Unknown' ? 'Unknown' : false, reason: failing.reason, message: failing.message };
}
