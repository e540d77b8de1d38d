"""Turning a question's answer options into the token sequences the judge would emit.

An option's probability is the product of its own tokens' probabilities, teacher-forced after the prompt
(DESIGN 2): with a Llama vocabulary ``" 2"`` is ``"▁"`` then ``"2"``, and ``" -1"`` may begin with a merged
``"▁-"``. The tokens are read off the tokenisation of ``prompt + answer_prefix + label`` so that whatever
the tokenizer does at the boundary is what we score.

The options' token sequences form a tree (with a Llama vocabulary the root's children are ``"▁"``, shared
by every digit, and ``"▁-"``). Besides the options, an encoded question asks the engines for the log
probability of each inner node of that tree (a proper prefix of an option), so that the answer greedy
decoding would give, restricted to the options, can be read off (:meth:`EncodedQuestion.greedy_index`):
greedy compares ``P("▁")``, the mass of all digits together, with ``P("▁-")`` before it looks at a digit,
which the most probable option (the product of its tokens' probabilities) does not.

Example:
    >>> from evalalign_metric.testing import build_tiny_tokenizer
    >>> tok = build_tiny_tokenizer("llama")
    >>> q = encode_question(tok, "USER: <image>\\nQ? ASSISTANT:", " ", ("0", "1", "-1"))
    >>> [tok.convert_ids_to_tokens(list(ids)) for ids in q.option_ids]
    [['▁', '0'], ['▁', '1'], ['▁-', '1']]
    >>> tree = q.with_tree_nodes()
    >>> [tok.convert_ids_to_tokens(list(ids)) for ids in tree.option_ids[3:]], tree.option_labels
    ([['▁'], ['▁-']], ('0', '1', '-1'))
    >>> import math, torch   # P(▁)=0.6 spread over 0 (0.35) and 1 (0.25); P(▁-)=0.4, all of it on -1
    >>> log_probs = torch.tensor([0.35, 0.25, 0.4, 0.6, 0.4]).log()
    >>> tree.option_labels[tree.greedy_index(log_probs)], tree.option_labels[int(log_probs[:3].argmax())]
    ('0', '-1')
"""

from __future__ import annotations

from dataclasses import dataclass

from evalalign_metric.errors import InputError


@dataclass(frozen=True)
class EncodedQuestion:
    """A question ready for the judge: prompt ids (with ONE image token) and the token sequences to score.

    From :func:`encode_question` these are the options. :meth:`with_tree_nodes` appends the inner nodes of
    their token tree (labelled ``"<node i>"``, after the ``n_options`` options); engines score every
    sequence alike (the sum of its tokens' log-probabilities after the prompt).
    """

    text: str
    prompt_ids: tuple[int, ...]
    labels: tuple[str, ...]
    option_ids: tuple[tuple[int, ...], ...]
    n_options: int | None = None

    @property
    def option_labels(self) -> tuple[str, ...]:
        return self.labels[: self._options]

    @property
    def _options(self) -> int:
        return len(self.labels) if self.n_options is None else self.n_options

    def with_tree_nodes(self) -> "EncodedQuestion":
        """This question with the inner nodes of the options' token tree as extra sequences to score."""
        options = self.option_ids[: self._options]
        nodes = tree_nodes(options)
        return EncodedQuestion(self.text, self.prompt_ids,
                               self.option_labels + tuple(f"<node {i}>" for i in range(len(nodes))),
                               options + tuple(nodes), n_options=len(options))

    def rows(self) -> list[tuple[tuple[int, ...], list[int]]]:
        """Teacher-forcing rows: each distinct option prefix (all tokens but the last) with the sequences it
        serves. Options sharing a prefix (``"▁"`` before every digit) are read from one row, and an inner node
        from the row of an option it starts (no row of its own)."""
        groups: dict[tuple[int, ...], list[int]] = {}
        options = self.option_ids[: self._options]
        for index, ids in enumerate(options):
            groups.setdefault(ids[:-1], []).append(index)
        for index in range(self._options, len(self.option_ids)):
            node = self.option_ids[index]
            row = next(ids[:-1] for ids in options if ids[: len(node)] == node)
            groups[row].append(index)
        return list(groups.items())

    def greedy_index(self, log_probs) -> int:
        """The option that greedy decoding restricted to the options' tokens reaches: from the root, follow
        the child (a node or an option) with the highest log-probability until an option is reached (ties:
        the first option's branch). ``log_probs`` holds one value per sequence of ``option_ids``."""
        scored = {ids: float(lp) for ids, lp in zip(self.option_ids, log_probs)}
        options = self.option_ids[: self._options]
        node: tuple[int, ...] = ()
        while node not in options:
            children = list(dict.fromkeys(ids[: len(node) + 1] for ids in options if ids[: len(node)] == node))
            node = max(children, key=lambda child: scored[child])
        return options.index(node)


def tree_nodes(option_ids) -> list[tuple[int, ...]]:
    """The inner nodes of the options' token tree: every non-empty proper prefix of an option, in order."""
    nodes = (ids[:k] for ids in option_ids for k in range(1, len(ids)))
    return list(dict.fromkeys(nodes))


def encode_question(tokenizer, prompt: str, answer_prefix: str, labels: tuple[str, ...]) -> EncodedQuestion:
    """Tokenise ``prompt`` and each option as it would follow the prompt."""
    base = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    option_ids = []
    for label in labels:
        full = tokenizer(prompt + answer_prefix + label, add_special_tokens=True)["input_ids"]
        if full[: len(base)] != base or len(full) == len(base):
            raise InputError(
                f"option {label!r} does not tokenise as a continuation of the prompt (the tokenizer merges "
                "across the prompt/answer boundary); choose option labels or an answer_prefix that do not merge"
            )
        option_ids.append(tuple(full[len(base):]))
    for i, a in enumerate(option_ids):
        for j, b in enumerate(option_ids):
            if i != j and b[: len(a)] == a:
                raise InputError(
                    f"option {labels[i]!r} tokenises as a prefix of option {labels[j]!r}; their probabilities "
                    "would overlap. Use labels that differ in their tokens (e.g. letters instead of 1 and 10)"
                )
    return EncodedQuestion(text=prompt, prompt_ids=tuple(base), labels=tuple(labels), option_ids=tuple(option_ids))
