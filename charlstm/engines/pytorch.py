"""charlstm's training run on PyTorch's engine: one device (a GPU, or the CPU's own threads) or
several processes started by torchrun, sharing each batch through DistributedDataParallel.

Only the step changes (training/engine.py says what an engine is): the recipe, the streams and
their carried state, the schedule, evaluation, the run directory and the checkpoints are the
training loop's, the same as on NumPy.

The weights are charlstm's own arrays, under charlstm's keys and in charlstm's layout, made
torch tensors on the device. Each step turns them into the hand-off module's weights
(export/torch_module.py's CharModel: nn.Embedding, nn.LSTM / nn.GRU / nn.RNN or the peephole
module, nn.Linear, by the map of export/layouts.py: a transpose, a zero bias) and runs that
module with torch.func.functional_call, so PyTorch's fused kernels do the work while autograd
carries the gradient back to charlstm's arrays. Adam's moments therefore have charlstm's keys and
shapes too, and Adam is nn/optim.py's, written with torch's in-place operations: a checkpoint
written on either engine resumes on the other with nothing converted.

Several processes (torchrun sets WORLD_SIZE, RANK, LOCAL_RANK and the rendezvous): each holds
the whole model and batch_size / world_size of the streams (its columns of every chunk, and
their carried state); DistributedDataParallel averages the gradients, so every process takes the
same update. The loss of each process is scaled so that the average is the mean over the whole
batch, exactly the one-process step. Rank 0 alone evaluates and writes; the carried state of all
streams is gathered to it before it saves.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from charlstm.errors import CharlstmError
from charlstm.export.layouts import LAYOUTS
from charlstm.export.torch_module import CharModel, module_config
from charlstm.interrupts import checkpoint
from charlstm.model import ModelConfig, State
from charlstm.training.engine import diverged

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8        # nn/optim.py's adam_update defaults


def _name(key: str) -> str:
    """A charlstm key as a module attribute name (which cannot hold a dot)."""
    return key.replace(".", "__")


class CharlstmParameters(nn.Module):
    """charlstm's parameters (its keys, its layout) run as the hand-off's CharModel.

    forward(ids (B, T) long, state) -> (logits (B, T, V), state), state as CharModel takes it.
    """

    def __init__(self, config: ModelConfig, params: dict[str, np.ndarray], device, dtype):
        super().__init__()
        self.keys = list(params)
        self.config = config
        self.weights = nn.ParameterDict({_name(k): nn.Parameter(torch.tensor(np.asarray(params[k]), dtype=dtype,
                                                                               device=device))
                                         for k in self.keys})
        # The module whose computation is run; its own weights are never trained nor read.
        self.net = CharModel(**module_config(config)).to(device=device, dtype=dtype).requires_grad_(False)
        layout = LAYOUTS[config.cell]
        if layout.biases == ("b",):     # PyTorch adds a second bias that charlstm has not: held at zero
            self.register_buffer("zero_bias", torch.zeros(layout.gates * config.hidden_size, dtype=dtype,
                                                          device=device))

    def param(self, key: str) -> nn.Parameter:
        return self.weights[_name(key)]

    def module_weights(self) -> dict[str, torch.Tensor]:
        """The CharModel's state_dict made of charlstm's parameters (export/layouts.py's map)."""
        config, layout = self.config, LAYOUTS[self.config.cell]
        w = self.param
        out = {"embedding.weight": w("embedding")} if config.embedding_size else {}
        for k in range(config.num_layers):
            prefix = f"{config.cell}.{k}."
            # contiguous: the fused kernels (cuDNN, oneDNN) want each matrix in one block
            out[f"rnn.weight_ih_l{k}"] = w(prefix + "Wx").t().contiguous()
            out[f"rnn.weight_hh_l{k}"] = w(prefix + "Wh").t().contiguous()
            if layout.biases == ("bx", "bh"):
                out[f"rnn.bias_ih_l{k}"], out[f"rnn.bias_hh_l{k}"] = w(prefix + "bx"), w(prefix + "bh")
            else:
                out[f"rnn.bias_ih_l{k}"], out[f"rnn.bias_hh_l{k}"] = w(prefix + "b"), self.zero_bias
            for key in layout.peepholes:
                out[f"rnn.peephole_{key[2:]}_l{k}"] = w(prefix + key)
        out["head.weight"] = w("head.W").t().contiguous()
        out["head.bias"] = w("head.b")
        return out

    def forward(self, ids, state):
        self.net.train(self.training)
        return functional_call(self.net, self.module_weights(), (ids, state))


def choose_device(device: str | None) -> torch.device:
    """The device named (cpu, cuda, cuda:N; default cpu), checked to exist."""
    name = device or "cpu"
    try:
        found = torch.device(name)
    except (RuntimeError, ValueError):
        raise CharlstmError(f"--device {name!r}: not a device PyTorch knows; use cpu, cuda or cuda:N") from None
    if found.type == "cuda":
        if not torch.cuda.is_available():
            raise CharlstmError(f"--device {name}: PyTorch sees no CUDA device here (torch.cuda.is_available() is "
                                "False); use --device cpu")
        if found.index is not None and found.index >= torch.cuda.device_count():
            raise CharlstmError(f"--device {name}: PyTorch sees {torch.cuda.device_count()} CUDA device(s), "
                                f"numbered from 0")
    elif found.type != "cpu":
        raise CharlstmError(f"--device {name}: charlstm trains on cpu or cuda devices")
    return found


class TorchEngine:
    """The training step on PyTorch (see the module docstring)."""

    name = "torch"

    def __init__(self, device: str | None = None):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = 0
        self.device = choose_device(device)
        if self.world_size > 1 and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))     # one GPU per process
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)          # before NCCL starts: its communicator binds to it
        if self.world_size > 1:
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.rank = dist.get_rank()
        self.module = self.model = None
        self.state: tuple = ()
        self.failed = False             # a collective failed: another process is gone

    # --- the run's arrays in and out -------------------------------------------------------------

    def start(self, run) -> None:
        B = run.config.batch_size
        if B % self.world_size:
            raise CharlstmError(f"--batch-size {B} is not a multiple of the {self.world_size} processes that share "
                                f"it: each process reads an equal part of every batch")
        share = B // self.world_size
        self.columns = slice(self.rank * share, (self.rank + 1) * share)
        self.dtype = torch.float64 if run.params["head.W"].dtype == np.float64 else torch.float32
        # cuDNN would rather hold a recurrent layer's weights in one block; these are made afresh from
        # charlstm's arrays at every step (a copy of the parameters' size, nothing next to the step's
        # work), which it says once in a warning that is not the user's business
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
        self.module = CharlstmParameters(run.model_config, run.params, self.device, self.dtype)
        self.model = self.module
        if self.world_size > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.m = {k: self._tensor(run.adam.m[k]) for k in self.module.keys}
        self.v = {k: self._tensor(run.adam.v[k]) for k in self.module.keys}
        self.adam_step = run.adam.step
        self.state = tuple(self._tensor(getattr(run.state, part)[:, self.columns])
                           for part in run.model_config.cell_type.state)
        # Dropout draws from PyTorch's generator, seeded from the run's seed, its step and the
        # process, so that processes drop different units and a resumed run draws anew.
        seed = np.random.SeedSequence([run.config.seed, run.prog.step, self.rank]).generate_state(1)[0]
        torch.manual_seed(int(seed))

    def sync(self, run) -> None:
        with torch.no_grad():
            for k in self.module.keys:
                run.params[k][...] = self.module.param(k).detach().cpu().numpy()
                run.adam.m[k][...] = self.m[k].cpu().numpy()
                run.adam.v[k][...] = self.v[k].cpu().numpy()
            run.adam.step = self.adam_step
            parts = {}
            for part, local in zip(run.model_config.cell_type.state, self.state):
                whole = local
                if self.world_size > 1:
                    pieces = [torch.empty_like(local) for _ in range(self.world_size)]
                    self._collective(dist.all_gather, pieces, local.contiguous())
                    whole = torch.cat(pieces, dim=1)
                parts[part] = whole.cpu().numpy().astype(run.params["head.W"].dtype)
            run.state = State(**parts)

    def _tensor(self, array) -> torch.Tensor:
        return torch.tensor(np.asarray(array), dtype=self.dtype, device=self.device)

    # --- the step ------------------------------------------------------------------------------

    def step(self, run, inputs, targets, weights, lr: float) -> tuple[float, float, bool]:
        config = run.model_config
        ids = self._ids(inputs)
        wanted = self._ids(targets).reshape(-1)
        total = float(inputs.size if weights is None else weights.sum())   # predictions of the whole batch
        self.model.train()
        logits, new_state = self.model(ids, self._state_for_module())
        nll = F.cross_entropy(logits.reshape(-1, config.vocab_size), wanted, reduction="none")
        if weights is not None:
            nll = nll * torch.from_numpy(np.ascontiguousarray(weights[:, self.columns].T)).to(
                self.device, self.dtype).reshape(-1)
        mine = nll.sum() / total
        # DistributedDataParallel averages the processes' gradients: scaled by world_size, the
        # average is the gradient of the whole batch's mean loss, as on one process.
        self._collective((mine * self.world_size).backward)
        loss_t = mine.detach()
        if self.world_size > 1:
            self._collective(dist.all_reduce, loss_t)
        grads = [self.module.param(k).grad for k in self.module.keys]
        with torch.no_grad():
            norm_t = torch.sqrt(sum((g.double() * g.double()).sum() for g in grads))
            loss, norm = float(loss_t), float(norm_t)
            clip = run.config.grad_clip
            if not (math.isfinite(loss) and math.isfinite(norm)):
                self.module.zero_grad(set_to_none=True)
                return loss, norm, False
            if clip and clip > 0 and norm > clip:
                torch._foreach_mul_(grads, clip / (norm + 1e-6))
            self._adam(grads, lr)
            self.module.zero_grad(set_to_none=True)
            finite = torch.stack([torch.isfinite(self.module.param(k)).all() for k in self.module.keys]).all()
            if not bool(finite):
                raise diverged(run.prog.step, lr)
        self.state = tuple(part.detach() for part in (new_state if isinstance(new_state, tuple) else (new_state,)))
        return loss, norm, True

    def _adam(self, grads, lr: float) -> None:
        """nn/optim.py's adam_update, in place on the device's tensors."""
        self.adam_step += 1
        t = self.adam_step
        step_size = lr * math.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
        eps = EPS * math.sqrt(1 - BETA2 ** t)
        for key, g in zip(self.module.keys, grads):
            p, m, v = self.module.param(key), self.m[key], self.v[key]
            m.mul_(BETA1).add_(g, alpha=1 - BETA1)
            v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
            p.addcdiv_(m, v.sqrt().add_(eps), value=-step_size)

    def _ids(self, array) -> torch.Tensor:
        """This process's columns of a (T, B) chunk, batch first, as the module takes them."""
        return torch.from_numpy(np.ascontiguousarray(array[:, self.columns].T).astype(np.int64)).to(self.device)

    def _state_for_module(self):
        return self.state if len(self.state) == 2 else self.state[0]

    def reset_state(self, run) -> None:
        self.state = tuple(torch.zeros_like(part) for part in self.state)
        run.state = State(**{part: np.zeros_like(getattr(run.state, part)) for part in run.model_config.cell_type.state})

    # --- evaluation (rank 0 only) ----------------------------------------------------------------

    def evaluate(self, run, streams) -> tuple[float, int]:
        """training/evaluation.py's evaluate_streams on the device."""
        total, count = 0.0, 0.0
        self.module.eval()
        with torch.no_grad():
            state = None
            for index in range(streams.chunks_per_pass):
                checkpoint()
                inputs, targets, weights = streams.chunk(index)
                ids = torch.from_numpy(np.ascontiguousarray(inputs.T).astype(np.int64)).to(self.device)
                logits, state = self.module(ids, state)
                wanted = torch.from_numpy(np.ascontiguousarray(targets.T).astype(np.int64)).to(self.device)
                nll = F.cross_entropy(logits.reshape(-1, run.model_config.vocab_size), wanted.reshape(-1),
                                      reduction="none").double()
                if weights is not None:
                    nll = nll * torch.from_numpy(np.ascontiguousarray(weights.T)).to(self.device).reshape(-1)
                    count += float(weights.sum())
                else:
                    count += targets.size
                total += float(nll.sum())
        return total / count, int(count)

    # --- processes that share the run ------------------------------------------------------------

    def agree(self, stop: bool, time_up: bool, due: bool) -> tuple[bool, bool, bool]:
        if self.world_size == 1:
            return stop, time_up, due
        first = self.rank == 0
        flags = torch.tensor([float(stop), float(time_up and first), float(due and first)],
                             device=self.device if self.device.type == "cuda" else "cpu")
        self._collective(dist.all_reduce, flags, op=dist.ReduceOp.MAX)
        stop, time_up, due = (bool(x) for x in flags.tolist())
        return stop, time_up, due

    def barrier(self) -> None:
        if self.world_size > 1:
            self._collective(dist.barrier)

    def _collective(self, call, *args, **kwargs):
        """A call that needs every process: one that has died or stopped is one line, not a hang."""
        try:
            return call(*args, **kwargs)
        except (RuntimeError, dist.DistBackendError) as e:
            if self.world_size == 1:
                raise
            self.failed = True
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise CharlstmError(f"process {self.rank} of {self.world_size}: another process of this run "
                                f"stopped ({first}); the last checkpoint written is kept") from None

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            if not self.failed:
                # every process waits for the others before tearing its connections down: one
                # that leaves first closes sockets the others' gloo threads still read, and a
                # thread that fails as its process exits aborts that process
                try:
                    dist.barrier()
                except (RuntimeError, dist.DistBackendError):
                    pass
            dist.destroy_process_group()


__all__ = ["TorchEngine", "CharlstmParameters", "choose_device"]
