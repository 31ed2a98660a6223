from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Effort(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EFFORT_UNSPECIFIED: _ClassVar[Effort]
    EFFORT_LOW: _ClassVar[Effort]
    EFFORT_MEDIUM: _ClassVar[Effort]
    EFFORT_HIGH: _ClassVar[Effort]

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_THINKING: _ClassVar[Channel]
    CHANNEL_ANSWER: _ClassVar[Channel]

class ThinkingEndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THINKING_END_UNSPECIFIED: _ClassVar[ThinkingEndReason]
    THINKING_END_NATURAL: _ClassVar[ThinkingEndReason]
    THINKING_END_FORCED: _ClassVar[ThinkingEndReason]
    THINKING_END_DISABLED: _ClassVar[ThinkingEndReason]

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_STOP: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_ABORTED: _ClassVar[FinishReason]
EFFORT_UNSPECIFIED: Effort
EFFORT_LOW: Effort
EFFORT_MEDIUM: Effort
EFFORT_HIGH: Effort
CHANNEL_UNSPECIFIED: Channel
CHANNEL_THINKING: Channel
CHANNEL_ANSWER: Channel
THINKING_END_UNSPECIFIED: ThinkingEndReason
THINKING_END_NATURAL: ThinkingEndReason
THINKING_END_FORCED: ThinkingEndReason
THINKING_END_DISABLED: ThinkingEndReason
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_ABORTED: FinishReason

class VerificationSpec(_message.Message):
    __slots__ = ("kind", "reference", "tolerance", "tests", "best_of_n", "timeout_s")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    BEST_OF_N_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    kind: str
    reference: str
    tolerance: float
    tests: _containers.RepeatedScalarFieldContainer[str]
    best_of_n: bool
    timeout_s: float
    def __init__(self, kind: _Optional[str] = ..., reference: _Optional[str] = ..., tolerance: _Optional[float] = ..., tests: _Optional[_Iterable[str]] = ..., best_of_n: _Optional[bool] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class VerificationResult(_message.Message):
    __slots__ = ("kind", "reward", "verdict", "extracted_answer", "verifier_version", "seconds", "detail", "flags")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    EXTRACTED_ANSWER_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    reward: float
    verdict: str
    extracted_answer: str
    verifier_version: str
    seconds: float
    detail: str
    flags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[str] = ..., reward: _Optional[float] = ..., verdict: _Optional[str] = ..., extracted_answer: _Optional[str] = ..., verifier_version: _Optional[str] = ..., seconds: _Optional[float] = ..., detail: _Optional[str] = ..., flags: _Optional[_Iterable[str]] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class Messages(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ...) -> None: ...

class SamplingOptions(_message.Message):
    __slots__ = ("temperature", "top_p", "top_k", "seed", "n", "stop")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    top_k: int
    seed: int
    n: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., seed: _Optional[int] = ..., n: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

class ThinkingOptions(_message.Message):
    __slots__ = ("budget", "min_tokens", "wrap_up", "continuation", "effort", "hide_thinking")
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    MIN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    WRAP_UP_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    EFFORT_FIELD_NUMBER: _ClassVar[int]
    HIDE_THINKING_FIELD_NUMBER: _ClassVar[int]
    budget: int
    min_tokens: int
    wrap_up: str
    continuation: str
    effort: Effort
    hide_thinking: bool
    def __init__(self, budget: _Optional[int] = ..., min_tokens: _Optional[int] = ..., wrap_up: _Optional[str] = ..., continuation: _Optional[str] = ..., effort: _Optional[_Union[Effort, str]] = ..., hide_thinking: _Optional[bool] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("request_id", "prompt", "chat", "sampling", "max_answer_tokens", "thinking", "verification", "shadow", "return_tokens", "return_logprobs", "adapter")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHAT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    MAX_ANSWER_TOKENS_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    RETURN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RETURN_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt: str
    chat: Messages
    sampling: SamplingOptions
    max_answer_tokens: int
    thinking: ThinkingOptions
    verification: VerificationSpec
    shadow: bool
    return_tokens: bool
    return_logprobs: bool
    adapter: str
    def __init__(self, request_id: _Optional[str] = ..., prompt: _Optional[str] = ..., chat: _Optional[_Union[Messages, _Mapping]] = ..., sampling: _Optional[_Union[SamplingOptions, _Mapping]] = ..., max_answer_tokens: _Optional[int] = ..., thinking: _Optional[_Union[ThinkingOptions, _Mapping]] = ..., verification: _Optional[_Union[VerificationSpec, _Mapping]] = ..., shadow: _Optional[bool] = ..., return_tokens: _Optional[bool] = ..., return_logprobs: _Optional[bool] = ..., adapter: _Optional[str] = ...) -> None: ...

class Delta(_message.Message):
    __slots__ = ("index", "channel", "text", "token_count", "forced")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    FORCED_FIELD_NUMBER: _ClassVar[int]
    index: int
    channel: Channel
    text: str
    token_count: int
    forced: bool
    def __init__(self, index: _Optional[int] = ..., channel: _Optional[_Union[Channel, str]] = ..., text: _Optional[str] = ..., token_count: _Optional[int] = ..., forced: _Optional[bool] = ...) -> None: ...

class ThinkingEnded(_message.Message):
    __slots__ = ("index", "reason", "thinking_tokens", "forced_continuations")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    THINKING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FORCED_CONTINUATIONS_FIELD_NUMBER: _ClassVar[int]
    index: int
    reason: ThinkingEndReason
    thinking_tokens: int
    forced_continuations: int
    def __init__(self, index: _Optional[int] = ..., reason: _Optional[_Union[ThinkingEndReason, str]] = ..., thinking_tokens: _Optional[int] = ..., forced_continuations: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "thinking_tokens", "answer_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    THINKING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    thinking_tokens: int
    answer_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., thinking_tokens: _Optional[int] = ..., answer_tokens: _Optional[int] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("time_to_first_token_s", "time_to_first_answer_token_s", "total_s")
    TIME_TO_FIRST_TOKEN_S_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_ANSWER_TOKEN_S_FIELD_NUMBER: _ClassVar[int]
    TOTAL_S_FIELD_NUMBER: _ClassVar[int]
    time_to_first_token_s: float
    time_to_first_answer_token_s: float
    total_s: float
    def __init__(self, time_to_first_token_s: _Optional[float] = ..., time_to_first_answer_token_s: _Optional[float] = ..., total_s: _Optional[float] = ...) -> None: ...

class TokenTrace(_message.Message):
    __slots__ = ("prompt_ids", "completion_ids", "injected", "logprobs")
    PROMPT_IDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_IDS_FIELD_NUMBER: _ClassVar[int]
    INJECTED_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    prompt_ids: _containers.RepeatedScalarFieldContainer[int]
    completion_ids: _containers.RepeatedScalarFieldContainer[int]
    injected: _containers.RepeatedScalarFieldContainer[bool]
    logprobs: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, prompt_ids: _Optional[_Iterable[int]] = ..., completion_ids: _Optional[_Iterable[int]] = ..., injected: _Optional[_Iterable[bool]] = ..., logprobs: _Optional[_Iterable[float]] = ...) -> None: ...

class Finished(_message.Message):
    __slots__ = ("index", "finish_reason", "usage", "weight_version", "timing", "thinking_end", "forced_continuations", "verification", "tokens", "effective_budget", "effective_max_answer_tokens")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    THINKING_END_FIELD_NUMBER: _ClassVar[int]
    FORCED_CONTINUATIONS_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_BUDGET_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_MAX_ANSWER_TOKENS_FIELD_NUMBER: _ClassVar[int]
    index: int
    finish_reason: FinishReason
    usage: Usage
    weight_version: str
    timing: Timing
    thinking_end: ThinkingEndReason
    forced_continuations: int
    verification: VerificationResult
    tokens: TokenTrace
    effective_budget: int
    effective_max_answer_tokens: int
    def __init__(self, index: _Optional[int] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., weight_version: _Optional[str] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., thinking_end: _Optional[_Union[ThinkingEndReason, str]] = ..., forced_continuations: _Optional[int] = ..., verification: _Optional[_Union[VerificationResult, _Mapping]] = ..., tokens: _Optional[_Union[TokenTrace, _Mapping]] = ..., effective_budget: _Optional[int] = ..., effective_max_answer_tokens: _Optional[int] = ...) -> None: ...

class Summary(_message.Message):
    __slots__ = ("choices", "verified_correct", "best_index")
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_CORRECT_FIELD_NUMBER: _ClassVar[int]
    BEST_INDEX_FIELD_NUMBER: _ClassVar[int]
    choices: int
    verified_correct: int
    best_index: int
    def __init__(self, choices: _Optional[int] = ..., verified_correct: _Optional[int] = ..., best_index: _Optional[int] = ...) -> None: ...

class GenerateEvent(_message.Message):
    __slots__ = ("request_id", "delta", "thinking_ended", "finished", "summary")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    THINKING_ENDED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    delta: Delta
    thinking_ended: ThinkingEnded
    finished: Finished
    summary: Summary
    def __init__(self, request_id: _Optional[str] = ..., delta: _Optional[_Union[Delta, _Mapping]] = ..., thinking_ended: _Optional[_Union[ThinkingEnded, _Mapping]] = ..., finished: _Optional[_Union[Finished, _Mapping]] = ..., summary: _Optional[_Union[Summary, _Mapping]] = ...) -> None: ...

class AbortRequest(_message.Message):
    __slots__ = ("request_ids",)
    REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    request_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AbortResponse(_message.Message):
    __slots__ = ("aborted",)
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    aborted: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, aborted: _Optional[_Iterable[str]] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("request_id", "index", "reward", "verification", "replace")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    index: int
    reward: float
    verification: VerificationSpec
    replace: bool
    def __init__(self, request_id: _Optional[str] = ..., index: _Optional[int] = ..., reward: _Optional[float] = ..., verification: _Optional[_Union[VerificationSpec, _Mapping]] = ..., replace: _Optional[bool] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("result", "trainable")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_FIELD_NUMBER: _ClassVar[int]
    result: VerificationResult
    trainable: bool
    def __init__(self, result: _Optional[_Union[VerificationResult, _Mapping]] = ..., trainable: _Optional[bool] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EffortPreset(_message.Message):
    __slots__ = ("effort", "budget")
    EFFORT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    effort: Effort
    budget: int
    def __init__(self, effort: _Optional[_Union[Effort, str]] = ..., budget: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_name", "model_path", "weight_version", "think_start", "think_end", "context_length", "max_budget", "default_budget", "default_max_answer_tokens", "effort_presets", "default_wrap_up", "default_continuation", "max_n", "max_lora_rank")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_VERSION_FIELD_NUMBER: _ClassVar[int]
    THINK_START_FIELD_NUMBER: _ClassVar[int]
    THINK_END_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_BUDGET_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_BUDGET_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_ANSWER_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EFFORT_PRESETS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_WRAP_UP_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    MAX_N_FIELD_NUMBER: _ClassVar[int]
    MAX_LORA_RANK_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_path: str
    weight_version: str
    think_start: str
    think_end: str
    context_length: int
    max_budget: int
    default_budget: int
    default_max_answer_tokens: int
    effort_presets: _containers.RepeatedCompositeFieldContainer[EffortPreset]
    default_wrap_up: str
    default_continuation: str
    max_n: int
    max_lora_rank: int
    def __init__(self, model_name: _Optional[str] = ..., model_path: _Optional[str] = ..., weight_version: _Optional[str] = ..., think_start: _Optional[str] = ..., think_end: _Optional[str] = ..., context_length: _Optional[int] = ..., max_budget: _Optional[int] = ..., default_budget: _Optional[int] = ..., default_max_answer_tokens: _Optional[int] = ..., effort_presets: _Optional[_Iterable[_Union[EffortPreset, _Mapping]]] = ..., default_wrap_up: _Optional[str] = ..., default_continuation: _Optional[str] = ..., max_n: _Optional[int] = ..., max_lora_rank: _Optional[int] = ...) -> None: ...
