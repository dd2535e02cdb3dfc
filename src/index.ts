/**
 * xml-organism: multi-agent organisms whose every message is an XML envelope flowing through
 * one typed pipeline. This is the library entry point.
 */
export * as Payload from "./domain/Payload.js"
export type { PayloadSpec, PayloadType } from "./domain/Payload.js"
export { Envelope, ENVELOPE_NS, ENVELOPE_XSD, writeEnvelope } from "./domain/Envelope.js"
export { isThreadId, ListenerName, makeThreadId, ThreadId } from "./domain/Ids.js"
export { Diagnostic } from "./domain/Diagnostic.js"
export * from "./domain/IngressError.js"
export * from "./domain/PumpError.js"
export * from "./domain/PumpEvent.js"
export {
  type AgentLimits,
  type AgentOutput,
  type LoopDetection,
  type StopCondition,
  StopConditionFailed,
  type StopContext,
  type StopHandler,
  type StopWhenBuiltIn
} from "./domain/AgentLimits.js"
export { type AgentContextOptions, ConcurrencyClass, type Handler, type HandlerMetadata, type SummariserOptions } from "./domain/Listener.js"
export { Listener } from "./pipeline/Listeners.js"
export { Conversation } from "./pipeline/Conversation.js"
export { CustomStage, StageDrop, type StageMessage, StagePoint } from "./domain/CustomStage.js"
export { CustomStages } from "./pipeline/pump/CustomStages.js"
export { type LlmAgentListenerOptions } from "./pipeline/agents/LlmAgent.js"
export { type BootMessage, defaultSettings, Organism, type OrganismSettings } from "./domain/Organism.js"
export { decodeReply, isReply, type PayloadValue, RawPayload, Reply, ReplySchema } from "./domain/Reply.js"
export { Boot, SystemError, SystemErrors, TextInput, TextOutput } from "./domain/SystemPayloads.js"
export {
  BufferComplete,
  BufferDispatched,
  BufferItemResult,
  BufferStart,
  SequenceComplete,
  SequenceError,
  SequenceStart
} from "./domain/PrimitivePayloads.js"
export { XmlEngine } from "./services/XmlEngine.js"
export { ThreadRegistry } from "./services/ThreadRegistry.js"
export * from "./services/errors.js"
export { Events } from "./services/Events.js"
export {
  type ApprovalError,
  ApprovalMismatch,
  ApprovalNotPending,
  approvalId,
  Approvals,
  Decision as ApprovalDecision,
  type DecideOptions,
  type PendingApproval
} from "./services/Approvals.js"
export { Journal, JournalError, type JournalContents } from "./services/Journal.js"
export { JournalRecord } from "./domain/JournalRecord.js"
export * as Tracing from "./observability/Tracing.js"
export { type OtlpProtocol, type TracingOptions, tracingOptions } from "./observability/TracingConfig.js"
export { type Divergence, makeOfflineModels, type OfflineModels } from "./journal/OfflineModels.js"
export { replay, type ReplayOptions, type ReplayResult } from "./journal/Replay.js"
export { Pump, SYSTEM } from "./pipeline/Pump.js"
export { IoFairness } from "./pipeline/IoFairness.js"
export { ShardCallFailed, ShardFailed, Shards, type ShardSource } from "./shards/Shards.js"
export { Ingress } from "./pipeline/Ingress.js"
export { type LoadedOrganism, loadOrganism } from "./config/loadOrganism.js"
export { layerForOrganism, type LayerForOrganismOptions } from "./config/layerForOrganism.js"
export { connectHttp, connectStdio, type McpClient, type McpTool, type McpToolResult } from "./mcp/McpClient.js"
export { McpCallError, McpServerGone, McpStartError } from "./mcp/McpErrors.js"
export { isMcpTool, keepMcpTools, startMcpTools, withMcpTools } from "./mcp/McpTools.js"
export { toolTypes } from "./mcp/ToolPayload.js"
export { ConfigProblem, OrganismConfigError } from "./config/ConfigError.js"
export {
  type AppendResult,
  ContextBuffer,
  type ContextBufferConfig,
  ContextFull,
  type ContextFullPolicy,
  type ContextMessage,
  type ContextQuery,
  type ContextSlot,
  defaultContextBufferConfig
} from "./services/ContextBuffer.js"
export {
  defaultTodoConfig,
  handleTodoComplete,
  handleTodoUntil,
  nudgeText,
  type TodoConfig,
  TodoNotFound,
  type TodoNudge,
  TodoRefused,
  TodoRegistry,
  type TodoRequester,
  type TodoWatcher
} from "./services/TodoRegistry.js"
export {
  BudgetExhausted,
  type BudgetConfig,
  BudgetRegistry,
  type BudgetStatus,
  type ConversationUsage,
  defaultBudgetConfig,
  type TokenUsage,
  type UsageTotals
} from "./services/BudgetRegistry.js"
export {
  type AgentPrompt,
  DuplicateListener,
  PromptConfigError,
  PromptRegistry,
  PromptRegistryFrozen,
  UnknownPeer
} from "./services/PromptRegistry.js"
export { TodoClosed, TodoComplete, TodoRegistered, TodoUntil } from "./domain/TodoPayloads.js"
export { BudgetSeverity, BudgetWarning } from "./domain/BudgetPayloads.js"
export { MockLlmServer, MockLlmServerError, type RecordedRequest, type RequestOutcome } from "./llm/MockLlmServer.js"
export { decodeMockScript, loadMockScript, MockScript, MockScriptError, type MockScriptInput } from "./llm/MockScript.js"
export {
  type BackendStatus,
  LlmRouter,
  type UsageLine,
  type UsageReport
} from "./services/LlmRouter.js"
export {
  LlmAttempt,
  LlmConfigError,
  LlmError,
  type LlmMessage,
  type LlmRequest,
  type LlmResponse,
  type LlmUsage
} from "./domain/Llm.js"
export {
  LlmBackendConfig,
  LlmConfig,
  type LlmConfigInput,
  LlmPrice,
  LlmProvider,
  LlmStrategy
} from "./domain/LlmConfig.js"
export * as OpenAiChatLanguageModel from "./llm/OpenAiChatLanguageModel.js"
