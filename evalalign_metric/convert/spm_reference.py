"""Token ids as the reference code computes them, from the checkpoint's SentencePiece model itself.

The original LLaVA code tokenises a prompt with the *slow* ``LlamaTokenizer`` of transformers 4.3x
(``tokenizer_image_token``): the text on each side of ``<image>`` separately, the beginning-of-sequence token
kept once. The slow tokenizer splits each piece on its special tokens and encodes the text between them with
SentencePiece:

- ``legacy=True`` (transformers 4.3x's default when ``tokenizer_config.json`` does not say): every text
  segment is encoded as the ``tokenizer.model`` proto says, so a ``▁`` (dummy prefix) starts each segment
  exactly when the proto's ``add_dummy_prefix`` is true (Llama-2 / Vicuna: yes; Yi: no);
- ``legacy=False``: the proto's dummy prefix is switched off, one ``▁`` is put before the piece (dropped when
  the piece starts with a special token), and segments after a special token get none.

:class:`SentencePieceReference` re-implements that with ``sentencepiece`` alone, so a converted fast
tokenizer can be checked against the tokenisation the judge was trained with, not against itself.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from evalalign_metric.convert.testing import train_sentencepiece
    >>> model = train_sentencepiece(Path(tempfile.mkdtemp()), chatml=True, dummy_prefix=False)
    >>> ref = SentencePieceReference(model, legacy=True, add_bos=False)
    >>> ref.adds_dummy_prefix
    False
    >>> ref.pieces("<|im_start|>user\\n<image>\\n2")
    ['<|im_start|>', 'us', 'er', '\\n', '<image>', '\\n', '2']
"""

from __future__ import annotations

import re
from pathlib import Path

IMAGE_TOKEN = "<image>"


def read_proto(model_file: str | Path):
    """The ``ModelProto`` of a ``tokenizer.model`` file."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(Path(model_file).read_bytes())
    return proto


def adds_dummy_prefix(model_file: str | Path) -> bool:
    """Whether the SentencePiece model puts a ``▁`` before the text it encodes (``add_dummy_prefix``)."""
    return bool(read_proto(model_file).normalizer_spec.add_dummy_prefix)


class SentencePieceReference:
    """The slow tokenizer's ids for a prompt, computed from ``tokenizer.model`` (see the module doc).

    Args:
        model_file: the checkpoint's ``tokenizer.model``.
        legacy: the slow tokenizer's ``legacy`` mode (``tokenizer_config.json``; True when absent).
        add_bos: whether the slow tokenizer adds the beginning-of-sequence token (``add_bos_token``).
        special_tokens: extra tokens the slow tokenizer splits on (added tokens), token -> id; pieces the
            model itself declares as control or user-defined symbols are always split on.
    """

    def __init__(self, model_file: str | Path, *, legacy: bool = True, add_bos: bool = True,
                 special_tokens: dict[str, int] | None = None):
        import sentencepiece as spm

        proto = read_proto(model_file)
        self.adds_dummy_prefix = bool(proto.normalizer_spec.add_dummy_prefix)
        self._as_is = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        proto.normalizer_spec.add_dummy_prefix = False
        self._no_prefix = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        self.legacy = legacy
        self.bos_id = self._as_is.bos_id() if add_bos and self._as_is.bos_id() >= 0 else None
        kinds = (proto.SentencePiece.CONTROL, proto.SentencePiece.USER_DEFINED)
        self.special = {p.piece: i for i, p in enumerate(proto.pieces) if p.type in kinds and p.piece}
        for token, index in (special_tokens or {}).items():
            self.special.setdefault(token, index)
        self.special.pop(IMAGE_TOKEN, None)
        names = sorted(self.special, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, names)) + ")") if names else None
        self._unk = self._as_is.id_to_piece(self._as_is.unk_id())

    def _segments(self, text: str) -> list[str]:
        return [s for s in self._split.split(text) if s] if self._split else ([text] if text else [])

    def _encode_plain(self, text: str) -> list[int]:
        # The slow tokenizer's non-legacy encode: text starting with a space keeps it as "▁" (encoded after
        # the unknown piece, which is then dropped, so SentencePiece cannot strip it).
        if not text.startswith(("▁", " ")):
            return self._no_prefix.encode(text)
        unk = len(self._no_prefix.encode(self._unk))
        return self._no_prefix.encode(self._unk + text)[unk:]

    def encode_piece(self, text: str) -> list[int]:
        """Ids of one piece of text (no ``<image>`` in it), without the beginning-of-sequence token."""
        ids: list[int] = []
        if self.legacy:
            for seg in self._segments(text):
                ids.extend([self.special[seg]] if seg in self.special else self._as_is.encode(seg))
            return ids
        segments = self._segments("▁" + text.replace("▁", " "))
        if len(segments) > 1 and segments[0] == "▁" and segments[1] in self.special:
            segments = segments[1:]
        for seg in segments:
            ids.extend([self.special[seg]] if seg in self.special else self._encode_plain(seg))
        return ids

    def ids(self, prompt: str, image_token_id: int = -200) -> list[int]:
        """The prompt's ids as ``tokenizer_image_token`` builds them (``image_token_id`` for each ``<image>``)."""
        ids = [] if self.bos_id is None else [self.bos_id]
        for i, piece in enumerate(prompt.split(IMAGE_TOKEN)):
            if i:
                ids.append(image_token_id)
            ids.extend(self.encode_piece(piece))
        return ids

    def piece(self, index: int) -> str:
        """The piece string of one id (``<image>`` for a negative id)."""
        return IMAGE_TOKEN if index < 0 else self._as_is.id_to_piece(index)

    def pieces(self, prompt: str) -> list[str]:
        """:meth:`ids` as piece strings, for error messages and tests."""
        return [self.piece(i) for i in self.ids(prompt)]
