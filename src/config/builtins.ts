/**
 * Payload types the framework ships, referable in YAML by bare name
 * (`accepts: [TextInput]`) instead of a module path.
 */
import type { PayloadType } from "../domain/Payload.js"
import {
  BufferComplete,
  BufferDispatched,
  BufferStart,
  SequenceComplete,
  SequenceError,
  SequenceStart
} from "../domain/PrimitivePayloads.js"
import { BudgetWarning } from "../domain/BudgetPayloads.js"
import { Boot, SystemError, TextInput, TextOutput } from "../domain/SystemPayloads.js"
import { TodoClosed, TodoComplete, TodoRegistered, TodoUntil } from "../domain/TodoPayloads.js"

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
