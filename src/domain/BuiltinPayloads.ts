/**
 * Payload types the framework ships, referable in YAML by bare name
 * (`accepts: [TextInput]`) instead of a module path.
 */
import type { PayloadType } from "./Payload.js"
import {
  BufferComplete,
  BufferDispatched,
  BufferStart,
  SequenceComplete,
  SequenceError,
  SequenceStart
} from "./PrimitivePayloads.js"
import { BudgetWarning } from "./BudgetPayloads.js"
import { Boot, SystemError, TextInput, TextOutput } from "./SystemPayloads.js"
import { TodoClosed, TodoComplete, TodoRegistered, TodoUntil } from "./TodoPayloads.js"

export const builtinPayloads: Record<string, PayloadType> = {
  Boot,
  SystemError,
  TextInput,
  TextOutput,
  SequenceStart,
  SequenceComplete,
  SequenceError,
  BufferStart,
  BufferComplete,
  BufferDispatched,
  BudgetWarning,
  TodoUntil,
  TodoComplete,
  TodoRegistered,
  TodoClosed
}
