"""Training augmentation for small images, applied to whole batches on their device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vitkit.data.splits import Dataset, _stats


@dataclass
class Augment:
    """Training augmentation for small images, applied to whole batches on their device.

    translate: random shift of up to this many pixels each way, the border filled with black (a random
    crop of the zero-padded image); flip: random horizontal flips; randaugment: torchvision's RandAugment
    (per image, on the CPU: slower, for longer runs).
    """

    translate: int = 0
    flip: bool = False
    randaugment: bool = False

    def __call__(self, images: torch.Tensor, mean, std, generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised images (B, C, H, W) -> augmented normalised images (B, C, H, W)."""
        if self.randaugment:
            images = self._randaugment(images, mean, std, generator)
        B, C, H, W = images.shape
        if self.translate:
            p = self.translate
            m, s = _stats(mean, std, images)
            black = (-m / s).view(1, C, 1, 1)  # the normalised value of a 0 pixel
            padded = torch.nn.functional.pad(images - black, (p, p, p, p)) + black  # (B, C, H + 2p, W + 2p)
            shift = torch.randint(
                0, 2 * p + 1, (2, B, 1), generator=generator, device=generator.device if generator else "cpu"
            ).to(images.device)
            rows = shift[0] + torch.arange(H, device=images.device)  # (B, H): the rows each image keeps
            cols = shift[1] + torch.arange(W, device=images.device)  # (B, W)
            batch = torch.arange(B, device=images.device).view(B, 1, 1)
            images = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(
                0, 3, 1, 2
            )  # (B, C, H, W)
        if self.flip:
            mirror = (
                torch.rand(B, generator=generator, device=generator.device if generator else "cpu").to(images.device)
                < 0.5
            )
            images = torch.where(mirror.view(B, 1, 1, 1), images.flip(-1), images)
        return images.contiguous()

    @staticmethod
    def _randaugment(images, mean, std, generator):
        from torchvision.transforms import v2

        m, s = _stats(mean, std, images)
        pixels = ((images * s + m).clamp(0, 1) * 255).round().to(torch.uint8).cpu()  # RandAugment works on uint8 images
        seed = int(
            torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device if generator else "cpu")
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # RandAugment draws from the global RNG: make it follow our generator
            rand = v2.RandAugment()
            pixels = torch.stack([rand(image) for image in pixels])
        return (pixels.to(images.device).float() / 255 - m) / s

    def transforms(self, image_size: int):
        """The same policy as a torchvision v2 pipeline on single (C, H, W) [0, 1] images (the DataLoader path)."""
        from torchvision.transforms import v2

        steps = []
        if self.randaugment:
            steps += [v2.ToDtype(torch.uint8, scale=True), v2.RandAugment(), v2.ToDtype(torch.float32, scale=True)]
        if self.translate:
            steps.append(v2.RandomCrop(image_size, padding=self.translate, fill=0))
        if self.flip:
            steps.append(v2.RandomHorizontalFlip())
        return v2.Compose(steps)


def default_augment(dataset: Dataset, randaugment: bool = False) -> Augment:
    """Shifts of up to 1/8 of the image (4 px at 32, 3 px at 28), flips only where the data allows them."""
    return Augment(translate=max(1, dataset.image_size // 8), flip=dataset.flip, randaugment=randaugment)
