"""Judge models: loading, judge families, chat formats, option probabilities.

Example:
    >>> from evalalign_metric.judge import CHAT_FORMATS, FAMILIES
    >>> sorted(CHAT_FORMATS)
    ['chatml', 'vicuna_v1']
    >>> FAMILIES["qwen2_5_vl"].name
    'qwen2.5-vl'
"""

from evalalign_metric.judge.backends import BACKENDS, Backend, register_backend
from evalalign_metric.judge.chat import CHAT_FORMATS, ChatFormat, detect_chat_format
from evalalign_metric.judge.chat_template import TemplateChat
from evalalign_metric.judge.engine import PlainEngine
from evalalign_metric.judge.families import FAMILIES, JudgeFamily, register_family
from evalalign_metric.judge.judge import Judge, OptionDistribution
from evalalign_metric.judge.loading import clear_judge_cache, load_judge

__all__ = [
    "BACKENDS", "Backend", "CHAT_FORMATS", "ChatFormat", "FAMILIES", "Judge", "JudgeFamily", "OptionDistribution",
    "PlainEngine", "TemplateChat", "clear_judge_cache", "detect_chat_format", "load_judge", "register_backend",
    "register_family",
]
