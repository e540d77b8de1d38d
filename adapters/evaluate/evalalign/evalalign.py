"""EvalAlign as a Hugging Face ``evaluate`` module: a thin wrapper over ``evalalign_metric.EvalAlignScore``.

Load it from a checkout with ``evaluate.load("adapters/evaluate/evalalign")`` or, unchanged, from a Hub
Space holding this file. All the work (judge, questions, scoring, aggregation) is done by the installed
``evalalign-metric`` package; this file only maps evaluate's inputs onto it.
"""

import hashlib
import re

import datasets
import evaluate
import evalalign_metric  # From: evalalign-metric[evaluate]

_CITATION = """\
@article{tan2024evalalign,
  title={EVALALIGN: Supervised Fine-Tuning Multimodal LLMs with Human-Aligned Data for Evaluating
         Text-to-Image Models},
  author={Tan, Zhiyu and Yang, Xiaomeng and Qin, Luozheng and Yang, Mengping and Zhang, Cheng and Li, Hao},
  journal={arXiv preprint arXiv:2406.16562},
  year={2024}
}
"""

_DESCRIPTION = """\
EvalAlign scores text-to-image outputs with a fine-tuned multimodal LLM (a LLaVA judge) that answers
fixed multiple-choice questions about each image: five faithfulness aspects (body, hand, face, object,
common sense; 0-4) asked of every image, and six alignment aspects (object, count, colour, style, spatial,
action; 0-2) built from the prompt's elements. Scores are the option the judge picks ("argmax", as in
EvalAlign) or the probability-weighted option score ("expectation", as in QAlign / iMatch). The result
holds every aspect's mean, each dimension's mean, an overall score in [0, 1] and diagnostics.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated images (PIL images, image file paths, or HxWxC uint8 arrays), one per prompt.
    references: the text prompts the images were generated from.
    elements (optional, keyword of `compute`): one dict per prompt in the official `result_info` form
        (e.g. `{"Object": "cat; mat;", "Color": "cat: black;"}`) or None. Prompts without elements use the
        official EvalAlign elements when the prompt is one of the 120 official alignment prompts, else the
        `element_extractor` given at load time, else the ones the package's deterministic parser finds in the
        prompt; only a prompt where it finds none is scored on faithfulness only (counted in
        `num_without_elements`).
Load-time options (`evaluate.load(path, config_name, **options)`):
    config_name: the judge, a local checkpoint folder or model reference (same as `model=`). Without one,
        the package's default judge for `protocol` is used (a warning says when that is an untrained demo
        judge).
    model, protocol ("evalalign"), scoring ("argmax" | "expectation"), device, dtype, batch_size, revision,
    element_extractor, use_official_elements, judge_kwargs, quantize ("int8" | "4bit"), device_map, max_memory:
    as for `evalalign_metric.EvalAlignScore`.
Returns:
    A dict of floats, the same keys and values as `EvalAlignScore.compute()`: `overall`, `faithfulness`,
    `alignment`, `faithfulness/<aspect>`, `alignment/<aspect>` (NaN when never asked),
    `alignment_total_per_image`, `num_images`, `num_without_elements`, `elements_from/<source>` (how many
    prompts got their elements from `caller`, `file`, `official`, `extractor`, `parser`), `mean_outside_mass`.
Examples:
    >>> import evaluate
    >>> from PIL import Image
    >>> from evalalign_metric.testing import build_tiny_judge
    >>> judge_dir = build_tiny_judge("tiny-judge")  # random weights: the numbers mean nothing
    >>> evalalign = evaluate.load("adapters/evaluate/evalalign", str(judge_dir))
    >>> out = evalalign.compute(predictions=[Image.new("RGB", (64, 64), "red")], references=["a red cube"],
    ...                         elements=[{"Object": "cube;", "Color": "cube: red;"}])
    >>> 0.0 <= out["overall"] <= 1.0
    True
"""

# Judges loaded by this module, by load arguments: one per process however often the module is loaded.
_JUDGES = {}
# Images scored per `update` call: bounds the memory of one step, not the result.
_CHUNK = 64


def _safe_config_name(reference):
    """A folder-safe name for evaluate's cache directory (a model path may be absolute or contain '..')."""
    if reference == "default":
        return reference
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", reference).strip("-.")[-60:] or "judge"
    return f"{slug}-{hashlib.sha1(reference.encode()).hexdigest()[:8]}"


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EvalAlign(evaluate.Metric):
    """EvalAlign / iMatch judge scores of generated images against their prompts."""

    def __init__(self, model=None, protocol="evalalign", scoring=None, device=None, dtype=None, batch_size=8,
                 revision=None, element_extractor=None, use_official_elements=True, judge_kwargs=None,
                 config_name=None, quantize=None, device_map=None, max_memory=None, **kwargs):
        if model is not None and config_name not in (None, "default") and str(model) != config_name:
            raise evalalign_metric.InputError(
                f"the judge was given twice: config_name={config_name!r} and model={str(model)!r}; pass one")
        if model is None and config_name not in (None, "default"):
            model = config_name
        self.model_reference = None if model is None else str(model)
        self.judge_options = {"device": device, "dtype": dtype, "batch_size": batch_size,
                              **({"revision": revision} if revision else {}), **dict(judge_kwargs or {}),
                              **{k: v for k, v in (("quantize", quantize), ("device_map", device_map),
                                                   ("max_memory", max_memory)) if v is not None}}
        self.protocol = evalalign_metric.load_protocol(protocol)
        self.scoring = scoring
        self.element_extractor = element_extractor
        self.use_official_elements = use_official_elements
        super().__init__(config_name=_safe_config_name(self.model_reference or "default"), **kwargs)

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Image(), "references": datasets.Value("string")}),
            homepage="https://github.com/SAIS-FUXI/EvalAlign",
            license="Apache-2.0",
            codebase_urls=["https://github.com/SAIS-FUXI/EvalAlign"],
            reference_urls=["https://arxiv.org/abs/2406.16562", "https://arxiv.org/abs/2504.12018"],
        )

    def _judge(self):
        reference = self.model_reference
        if reference is None:
            from evalalign_metric.registry import judge_when_none_named

            reference = str(judge_when_none_named(self.protocol))
        key = (reference, tuple(sorted((k, str(v)) for k, v in self.judge_options.items())))
        if key not in _JUDGES:
            _JUDGES[key] = evalalign_metric.load_judge(reference, **self.judge_options)
        return _JUDGES[key]

    def _compute(self, predictions, references, elements=None):
        if elements is not None and len(elements) != len(predictions):
            raise evalalign_metric.InputError(
                f"elements has {len(elements)} entries; expected one mapping (or None) per image "
                f"({len(predictions)})")
        metric = evalalign_metric.EvalAlignScore(
            judge=self._judge(), protocol=self.protocol, scoring=self.scoring,
            element_extractor=self.element_extractor, use_official_elements=self.use_official_elements,
            sync_on_compute=False)
        for start in range(0, len(predictions), _CHUNK):
            stop = start + _CHUNK
            metric.update(predictions[start:stop], references[start:stop],
                          None if elements is None else elements[start:stop])
        return {key: float(value) for key, value in metric.compute().items()}
