/**
 * An LLM agent's reasoning-token budget (`max_reasoning_tokens`), per conversation: the
 * hidden reasoning tokens its calls used, as the provider reports them (OpenAI Responses
 * `output_tokens_details.reasoning_tokens`, Chat Completions `completion_tokens_details`;
 * Anthropic reports none, so it is never charged there).
 *
 * The rule: the answer of the call that goes over the budget is used — it is complete and
 * paid for — and from then on the agent makes no more model calls in that conversation: each
 * further turn answers its caller with a SystemError (`budget`) and trips the guard
 * `reasoning-budget`.
 */
import type { ThreadId } from "../../domain/Ids.js"
import type { LlmResponse } from "../../domain/Llm.js"

export const makeReasoningBudget = (agent: string, max: number | undefined) => {
  const spent = new Map<ThreadId, number>()
  return {
    /** Why the agent may not call its model again in this conversation, if it may not. */
    exceeded: (root: ThreadId): string | undefined => {
      const used = spent.get(root) ?? 0
      return max !== undefined && used > max
        ? `${agent} has used ${used} reasoning tokens in this conversation, over its max_reasoning_tokens of ${max}`
        : undefined
    },
    charge: (root: ThreadId, response: LlmResponse): void => {
      const n = response.usage.reasoningTokens ?? 0
      if (n > 0) spent.set(root, (spent.get(root) ?? 0) + n)
    },
    used: (root: ThreadId): number => spent.get(root) ?? 0,
    forget: (root: ThreadId): void => void spent.delete(root)
  }
}
