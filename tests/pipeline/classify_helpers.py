"""A small classification task (what a user's own module would hold): three Gaussian clusters in
8-D with integer class labels, their data module, an MLP and an accuracy metric without type hints."""
from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset


class Blobs(Dataset):
    def __init__(self, seed: int, n: int = 96):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 3
        self.x = 3.0 * torch.eye(3, 8)[self.y] + 0.5 * torch.randn(n, 8, generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"input": self.x[i], "target": self.y[i]}


class BlobData(pl.LightningDataModule):
    def __init__(self, batch_size: int = 16):
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(Blobs(0), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(Blobs(1), batch_size=32)


class MLP(torch.nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.f = torch.nn.Sequential(torch.nn.Linear(8, width), torch.nn.ReLU(), torch.nn.Linear(width, 3))

    def forward(self, x):
        return self.f(x)


def accuracy(pred, target):
    return (pred.argmax(1) == target).float()
