"""Captions to token ids: a word-level tokenizer for the book's own captions, and a trained subword
tokenizer (Hugging Face ``tokenizers``) for anyone else's.

Both share one interface: ``encode(texts) -> (N, context) long`` padded on the right with id 0,
``mask(tokens)`` (True on real tokens), ``decode(tokens) -> list[str]``, ``vocab_size`` and
``context``. The empty caption is a row of padding: classifier-free guidance drops a caption by
replacing it with that row (``objectives.null_tokens``).

The shapes captions use 30 words (``shapes_tokenizer``); a word-level vocabulary read from the data
is exact for them and makes every token a readable word. For free-form captions use ``train_bpe``:
a byte-level BPE trained by ``tokenizers`` on the captions themselves (never a hand-written BPE).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks."""
    return _WORD.findall(text.lower())


def _padded(rows: list[list[int]], context: int, strict: bool, unit: str) -> torch.Tensor:
    """Id lists as one (N, context) long tensor, right-padded with 0; too long: an error or cut."""
    out = torch.zeros(len(rows), context, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row) > context and strict:
            raise ValueError(f"caption {i} has {len(row)} {unit}, more than the context of {context}")
        row = row[:context]
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def caption_key(caption: str) -> tuple:
    """What a shapes caption says, independent of the order it names the objects in: the sorted
    object phrases plus the background phrase ("a red circle and a blue square" and "a blue square
    and a red circle" get the same key)."""
    body, sep, background = caption.partition(" on a ")
    return tuple(sorted(p.strip() for p in body.split(" and "))) + ((background,) if sep else ())


@dataclass(frozen=True)
class WordTokenizer:
    """Word-level tokens: id 0 is padding, id 1 an unknown word, then the vocabulary in order."""

    vocab: tuple[str, ...]
    context: int = 24

    @classmethod
    def from_texts(cls, texts, context: int | None = None) -> "WordTokenizer":
        """The vocabulary of ``texts`` (sorted, so the same words give the same ids); ``context``
        defaults to the longest text."""
        seen = sorted({w for t in texts for w in words(t)})
        longest = max((len(words(t)) for t in texts), default=1)
        return cls(tuple(seen), context or longest)

    @property
    def itos(self) -> list[str]:
        return [PAD, UNK, *self.vocab]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + 2

    def _ids(self) -> dict[str, int]:
        ids = self.__dict__.get("_ids_cache")
        if ids is None:
            ids = {w: i + 2 for i, w in enumerate(self.vocab)}
            object.__setattr__(self, "_ids_cache", ids)
        return ids

    def encode(self, texts, strict: bool = True) -> torch.Tensor:
        """(N, context) long. ``strict``: a caption longer than ``context`` is an error (else it is
        cut); unknown words map to id 1."""
        ids = self._ids()
        return _padded([[ids.get(w, 1) for w in words(t)] for t in texts], self.context, strict, "words")

    def decode(self, tokens: torch.Tensor) -> list[str]:
        itos = self.itos
        return [" ".join(itos[i] for i in row.tolist() if i != 0) for row in tokens]

    @staticmethod
    def mask(tokens: torch.Tensor) -> torch.Tensor:
        return tokens != 0

    def empty(self, n: int) -> torch.Tensor:
        """``n`` empty captions (all padding): the unconditional input of classifier-free guidance."""
        return torch.zeros(n, self.context, dtype=torch.long)


def shapes_tokenizer(context: int = 24) -> WordTokenizer:
    """The tokenizer of every shapes caption, short and descriptive, one or two objects: its
    vocabulary comes from the generator's own attribute words and phrasing."""
    from .data import shapes

    parts = [*shapes.ATTRIBUTES["shape"], *shapes.ATTRIBUTES["colour"], *shapes.ATTRIBUTES["size"],
             *shapes.POSITIONS, *shapes.BACKGROUNDS, "a an and at the on background"]
    return WordTokenizer(tuple(sorted({w for p in parts for w in words(p)})), context)


class BPETokenizer:
    """A byte-level BPE from Hugging Face ``tokenizers``, with the same interface as
    ``WordTokenizer`` (id 0 is padding). Build one with ``train_bpe``."""

    def __init__(self, tokenizer, context: int):
        self.tok, self.context = tokenizer, context

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, texts, strict: bool = True) -> torch.Tensor:
        return _padded([enc.ids for enc in self.tok.encode_batch(list(texts))], self.context, strict, "tokens")

    def decode(self, tokens: torch.Tensor) -> list[str]:
        return [self.tok.decode([i for i in row.tolist() if i != 0]).strip() for row in tokens]

    @staticmethod
    def mask(tokens: torch.Tensor) -> torch.Tensor:
        return tokens != 0

    def empty(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.context, dtype=torch.long)

    def save(self, path) -> None:
        self.tok.save(str(path))

    @classmethod
    def load(cls, path, context: int) -> "BPETokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)), context)


def train_bpe(texts, vocab_size: int = 1000, context: int = 32, min_frequency: int = 2) -> BPETokenizer:
    """Train a byte-level BPE on ``texts`` (an iterable of strings) with Hugging Face ``tokenizers``.
    Needs the ``text`` extra: ``pip install 'ddpm_lib[text]'``."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("train_bpe needs Hugging Face tokenizers: pip install 'ddpm_lib[text]'") from e
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size <= len(alphabet) + 1:
        raise ValueError(f"vocab_size must exceed the {len(alphabet)} byte symbols + padding to leave room for "
                         f"merges; got {vocab_size}")
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD],
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    if tok.token_to_id(PAD) != 0:
        raise RuntimeError("the padding token did not get id 0")
    return BPETokenizer(tok, context)


def positional_padding(tokens: torch.Tensor, pad_id: int,
                       first_pad_id: int) -> torch.Tensor:
    """DALL-E's learned padding: a pad at position i becomes its own token
    ``first_pad_id + i`` (the vocabulary must hold ``context`` extra ids from
    ``first_pad_id``), so the model can tell an empty slot at position 3 from
    one at position 20 without an attention mask."""
    pos = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
    return torch.where(tokens == pad_id, first_pad_id + pos, tokens)
