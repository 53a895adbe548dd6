"""Train an archcalc spec with PyTorch's DistributedDataParallel, on every process torchrun
starts, on one machine or several.

    torchrun --nproc_per_node 2 examples/train_ddp.py --spec lenet5 --epochs 5 --out ddp.npz
    archcalc evaluate lenet5 ddp.npz

The network is the module archcalc's torch exporter writes (`archcalc export SPEC --torch`;
pass such a file with --model to train your edited copy). The data are the UCI digits
embedded in archcalc, fitted to the spec's input as `archcalc train` fits them and split
the same way, so `archcalc evaluate` scores the result on the same test images. Each
process trains on its own shard of every epoch (DistributedSampler); DDP averages the
gradients, so all processes hold the same weights after every step. Rank 0 writes the
final weights as an archcalc .npz. CPUs use the gloo backend, GPUs (one per process) nccl.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import tempfile
import types

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from archcalc.exporters.torch_export import class_name, torch_source
from archcalc.nn import data as datamod
from archcalc.spec import load


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="lenet5", help="a bundled spec or a spec file")
    parser.add_argument("--model", help="a file written by `archcalc export SPEC --torch` "
                                        "(default: export --spec here)")
    parser.add_argument("--weights", help="start from these archcalc weights (.npz); default: "
                                          "archcalc's own initial weights for --seed")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, help="stop after this many steps")
    parser.add_argument("--batch", type=int, default=32, help="images per process and step")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=10, help="steps between loss lines")
    parser.add_argument("--out", help="write the trained weights here (archcalc .npz)")
    return parser.parse_args(argv)


def exported_module(args, network) -> types.ModuleType:
    """The module of the exported file: --model's, or the spec exported in memory."""
    if args.model:
        spec = importlib.util.spec_from_file_location("exported", args.model)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    module = types.ModuleType("exported")
    exec(compile(torch_source(network), f"<{network.name} exported>", "exec"), module.__dict__)
    return module


def initial_weights(network, seed: int, folder: str) -> str:
    """archcalc's initial weights for `seed` (the spec's initialiser, he by default), as
    `archcalc train --seed` starts from; torch's own default initialisers learn the small
    digits far more slowly."""
    from archcalc.nn.network import build
    from archcalc.nn.weights import save_weights

    path = os.path.join(folder, "initial.npz")
    save_weights(build(network, seed=seed, init=network.init or "he"), path)
    return path


def digits(network):
    """(train, test) TensorDatasets of the digits at the spec's input shape, pixels in 0..1."""
    data = datamod.load("digits", network.input_shape, spec=network.name)
    train = TensorDataset(torch.from_numpy(data.train.x()), torch.from_numpy(data.train.labels))
    test = TensorDataset(torch.from_numpy(data.test.x()), torch.from_numpy(data.test.labels))
    return train, test


def say(text: str) -> None:
    """One line in one write, so that lines of several processes do not interleave."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer, in state_dict order: equal on every rank
    when DDP kept the replicas in step."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def accuracy(model: nn.Module, dataset, device) -> float:
    model.eval()
    right = 0
    for x, y in DataLoader(dataset, batch_size=256):
        right += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    model.train()
    return right / len(dataset)


def main(argv=None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if cuda else "cpu")

    network = load(args.spec)
    module = exported_module(args, network)
    torch.manual_seed(args.seed + rank)  # each process its own dropout masks
    with tempfile.TemporaryDirectory() as folder:
        # every process starts from the same weights (DDP would broadcast rank 0's anyway)
        weights = args.weights or initial_weights(network, args.seed, folder)
        model = getattr(module, class_name(network.name))(weights=weights).to(device)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    train, test = digits(network)
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True,
                                 seed=args.seed)
    loader = DataLoader(train, batch_size=args.batch, sampler=sampler, drop_last=True)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=args.lr)  # archcalc train's default
    loss_fn = nn.CrossEntropyLoss()
    if rank == 0:
        say(f"{network.name}: {len(train)} digits, {world} processes × {args.batch} images "
            f"per step, {len(loader)} steps per epoch")

    step = 0
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every process
        for x, y in loader:
            loss = loss_fn(ddp(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()  # DDP averages the gradients across processes here
            optimizer.step()
            step += 1
            if step % args.log_every == 0 or step == 1:
                mean = loss.detach().clone()
                dist.all_reduce(mean)
                if rank == 0:
                    say(f"step {step} loss {mean.item() / world:.4f}")
            if args.steps and step >= args.steps:
                break
        if args.steps and step >= args.steps:
            break

    say(f"rank {rank}: weights sha256 {digest(model)}")
    if rank == 0:
        say(f"test accuracy {accuracy(model, test, device):.2%}")
        if args.out:
            module.save_archcalc_weights(model, args.out)
            say(f"wrote {args.out}: archcalc evaluate {args.spec} {args.out}")
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
