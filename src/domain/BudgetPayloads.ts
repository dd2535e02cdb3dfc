/**
 * What an agent hears about its token budget. Fields follow xml-pipeline's BudgetWarning
 * (`percent_used` there, `percentUsed` here, `<PercentUsed>` on the wire).
 */
import { Schema } from "effect"
import * as Payload from "./Payload.js"

export const BudgetSeverity = Schema.Literal("warning", "critical", "final")
export type BudgetSeverity = typeof BudgetSeverity.Type

/**
 * Sent by the organism to an agent whose token use crossed 75 % (`warning`), 90 %
 * (`critical`) or 95 % (`final`) of its budget, so it can wrap up before model calls are
 * refused. The numbers are those of the budget closest to running out (the conversation's
 * or the agent's own).
 */
export class BudgetWarning extends Payload.Class<BudgetWarning>("BudgetWarning", {
  description: "your token budget for this conversation is running out"
})({
  /** 0–100 (and beyond, once exhausted), one decimal. */
  percentUsed: Schema.Number,
  tokensUsed: Schema.Int,
  tokensRemaining: Schema.Int,
  maxTokens: Schema.Int,
  severity: BudgetSeverity,
  message: Schema.String
}) {}

/** A model call was refused: the conversation's or the agent's budget is used up. */
export class BudgetExhausted extends Schema.TaggedError<BudgetExhausted>()("BudgetExhausted", {
  root: Schema.String,
  agent: Schema.String,
  /** Which budget ran out. */
  scope: Schema.Literal("conversation", "agent"),
  tokensUsed: Schema.Number,
  maxTokens: Schema.Number
}) {
  override get message() {
    const which = this.scope === "agent" ? `${this.agent}'s own token budget` : "the conversation's token budget"
    return `${which} is exhausted on ${this.root}: ${this.tokensUsed} of ${this.maxTokens} tokens used`
  }
}
