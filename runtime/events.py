"""Generation events as `rlvr.v1` messages: what the stream of one request carries."""

from __future__ import annotations

from rlvr.v1 import reasoning_pb2 as pb
from runtime import generation as gen

CHANNELS = {gen.THINKING: pb.CHANNEL_THINKING, gen.ANSWER: pb.CHANNEL_ANSWER}
END_REASONS = {gen.NATURAL: pb.THINKING_END_NATURAL, gen.FORCED: pb.THINKING_END_FORCED,
               gen.DISABLED: pb.THINKING_END_DISABLED, "": pb.THINKING_END_UNSPECIFIED}
FINISH_REASONS = {gen.STOP: pb.FINISH_REASON_STOP, gen.LENGTH: pb.FINISH_REASON_LENGTH,
                  gen.ABORTED: pb.FINISH_REASON_ABORTED}


def verification_proto(verdict) -> pb.VerificationResult | None:
    if verdict is None:
        return None
    return pb.VerificationResult(kind=verdict.verifier, reward=verdict.reward,
                                 verdict=verdict.verdict, extracted_answer=verdict.extracted_answer,
                                 verifier_version=verdict.version, seconds=verdict.seconds,
                                 detail=verdict.detail, flags=verdict.flags)


def token_trace(run: gen.ChoiceRun) -> pb.TokenTrace:
    ids, injected, logprobs = run.completion()
    return pb.TokenTrace(prompt_ids=run.prompt_ids, completion_ids=ids, injected=injected,
                         logprobs=logprobs if run.sampling.logprobs else [])


def to_proto(request_id: str, event: gen.Event, hide_thinking: bool,
             tokens: pb.TokenTrace | None = None) -> pb.GenerateEvent:
    if isinstance(event, gen.Delta):
        text = "" if hide_thinking and event.channel == gen.THINKING else event.text
        return pb.GenerateEvent(request_id=request_id, delta=pb.Delta(
            index=event.index, channel=CHANNELS[event.channel], text=text,
            token_count=event.token_count, forced=event.forced))
    if isinstance(event, gen.ThinkingEnded):
        return pb.GenerateEvent(request_id=request_id, thinking_ended=pb.ThinkingEnded(
            index=event.index, reason=END_REASONS[event.reason],
            thinking_tokens=event.thinking_tokens,
            forced_continuations=event.forced_continuations))
    return pb.GenerateEvent(request_id=request_id, finished=pb.Finished(
        index=event.index, finish_reason=FINISH_REASONS[event.finish_reason],
        usage=pb.Usage(prompt_tokens=event.prompt_tokens, thinking_tokens=event.thinking_tokens,
                       answer_tokens=event.answer_tokens),
        weight_version=event.weight_version,
        timing=pb.Timing(time_to_first_token_s=event.time_to_first_token_s,
                         time_to_first_answer_token_s=event.time_to_first_answer_token_s,
                         total_s=event.total_s),
        thinking_end=END_REASONS[event.thinking_end],
        forced_continuations=event.forced_continuations,
        verification=verification_proto(event.verification), tokens=tokens))
