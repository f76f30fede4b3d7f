"""The online discriminator: score (teacher, student) sequences and take Bradley-Terry steps.

One object serves the warmup stage (fresh student samples against teacher text) and the
adversarial stage (the GRPO rollouts). `step` returns the scores from *before* its update, which
is exactly what the policy's reward must be. With several processes the head is broadcast from
rank 0 at start and gradients are averaged before every update, so all ranks hold the same D.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from gad.training.losses import bradley_terry_loss, identical_share, pairwise_accuracy
from gad.training.metric_catalog import M
from gad.training.modeling import TokenInfo, build_sequence, pad_sequences, score_sequences
from gad.training.optim import keep_settings


@dataclass
class Group:
    """One prompt with its teacher response and the student responses to compare against it."""
    prompt_ids: list[int]
    teacher_ids: list[int]
    teacher_finished: bool
    student: list[tuple[list[int], bool]]  # (response ids, finished)

    def identical(self) -> list[bool]:
        """Per student response: is it the teacher's response, token for token (end-of-turn included)?"""
        return [ids == self.teacher_ids and fin == self.teacher_finished for ids, fin in self.student]


def identical_pairs(groups: list[Group]) -> torch.Tensor:
    """(M,) bool over all (teacher, student_i) pairs of all groups, in the order `step` lays them out."""
    return torch.tensor([x for g in groups for x in g.identical()], dtype=torch.bool)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class Discriminator:
    def __init__(self, model, info: TokenInfo, *, lr: float, weight_decay: float, grad_clip: float,
                 micro_batch: int = 16, trainable: bool = True, autocast: torch.dtype | None = None):
        self.model = model
        self.info = info
        self.autocast = autocast  # compute dtype on a GPU; weights (and AdamW state) stay as loaded
        self.grad_clip = grad_clip
        self.micro_batch = micro_batch  # sequences per forward pass, to bound memory
        self.device = next(model.parameters()).device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay) if trainable else None
        self._synced = False

    def _sync_once(self) -> None:
        """Rank 0's weights everywhere, at the first use: the process group may not exist yet at
        construction (the trainer creates it), and every rank scores and steps in lockstep."""
        if not self._synced and _distributed():
            for p in self.model.parameters():
                dist.broadcast(p.data, src=0)
        self._synced = True

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"] if self.optimizer else 0.0

    def _sequences(self, group: Group) -> list[list[int]]:
        teacher = build_sequence(group.prompt_ids, group.teacher_ids, group.teacher_finished, self.info)
        return [teacher] + [build_sequence(group.prompt_ids, r, f, self.info) for r, f in group.student]

    def _score(self, seqs: list[list[int]]) -> torch.Tensor:
        ids, mask = pad_sequences(seqs, self.info.pad_id, self.device)
        with torch.autocast(self.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None):
            return score_sequences(self.model, ids, mask)

    @torch.no_grad()
    def score(self, groups: list[Group]) -> tuple[list[float], list[list[float]]]:
        """Scores without updating: (teacher score per group, student scores per group)."""
        self._sync_once()
        was_training = self.model.training
        self.model.eval()
        teacher, student = [], []
        for g in groups:
            s = self._score(self._sequences(g)).tolist()
            teacher.append(s[0])
            student.append(s[1:])
        self.model.train(was_training)
        return teacher, student

    def step(self, groups: list[Group], update: bool = True,
             repeats: int = 1) -> tuple[list[list[float]], dict[str, float]]:
        """`repeats` Bradley-Terry steps over all (teacher, student_i) pairs of all groups.

        Returns the student scores per group as they were before the first update, and that update's
        metrics. Forward/backward runs in chunks of whole groups, each chunk's loss weighted by its share
        of the pairs, so the gradient equals the full-batch mean. `repeats` > 1 lets D catch up with a
        policy that moves faster than it (`disc_steps_per_step`).
        """
        if not update or self.optimizer is None:
            t, s = self.score(groups)
            pairs_t = torch.tensor([t[i] for i, g in enumerate(s) for _ in g])
            pairs_s = torch.tensor([x for g in s for x in g])
            return s, self._metrics(pairs_t, pairs_s, float(bradley_terry_loss(pairs_t, pairs_s)), None,
                                    identical_pairs(groups))
        scores, metrics = self._update(groups)
        for _ in range(repeats - 1):
            self._update(groups)
        return scores, metrics

    def _update(self, groups: list[Group]) -> tuple[list[list[float]], dict[str, float]]:

        self._sync_once()
        self.model.train()
        total_pairs = sum(len(g.student) for g in groups)
        all_t, all_s, student_scores, loss_sum = [], [], [], 0.0
        chunk: list[Group] = []

        def flush():
            nonlocal loss_sum
            seqs, owners = [], []
            for g in chunk:
                seqs += self._sequences(g)
                owners.append(len(g.student))
            scores = self._score(seqs)
            t_idx, s_idx, pos = [], [], 0
            for n in owners:
                t_idx += [pos] * n
                s_idx += list(range(pos + 1, pos + 1 + n))
                student_scores.append(scores[pos + 1: pos + 1 + n].detach().tolist())
                pos += n + 1
            t, s = scores[t_idx], scores[s_idx]
            loss = bradley_terry_loss(t, s) * (len(s_idx) / total_pairs)
            loss.backward()
            loss_sum += float(loss.detach())
            all_t.append(t.detach())
            all_s.append(s.detach())
            chunk.clear()

        size = 0
        for g in groups:
            chunk.append(g)
            size += len(g.student) + 1
            if size >= self.micro_batch:
                flush()
                size = 0
        if chunk:
            flush()

        if _distributed():
            world = dist.get_world_size()
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= world
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return student_scores, self._metrics(torch.cat(all_t).cpu(), torch.cat(all_s).cpu(), loss_sum, float(grad_norm),
                                             identical_pairs(groups))

    def _metrics(self, t: torch.Tensor, s: torch.Tensor, loss: float, grad_norm: float | None,
                 identical: torch.Tensor) -> dict[str, float]:
        # Accuracy over distinct pairs: a student response equal to the teacher's is no error of D's.
        out = {M.DISC_LOSS: loss, M.DISC_ACCURACY: float(pairwise_accuracy(t, s, identical)),
               M.DISC_IDENTICAL: float(identical_share(identical)),
               M.DISC_TEACHER_SCORE: float(t.mean()), M.DISC_STUDENT_SCORE: float(s.mean()),
               M.DISC_LR: self.lr}
        if grad_norm is not None:
            out[M.DISC_GRAD_NORM] = grad_norm
        return out

    # --- persistence ---------------------------------------------------------------------------
    def save(self, folder: Path, tokenizer=None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        if self.optimizer is not None:
            torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")

    def load_optimizer(self, folder: Path) -> None:
        """AdamW moments from a checkpoint; lr and weight decay stay this object's (the settings')."""
        path = folder / "optimizer.pt"
        if self.optimizer is not None and path.is_file():
            with keep_settings(self.optimizer):
                self.optimizer.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))

    def checksum(self) -> float:
        """Cheap fingerprint of the weights, to check that ranks agree."""
        with torch.no_grad():
            return float(sum(p.double().sum() * (i + 1) for i, p in enumerate(self.model.parameters())))
