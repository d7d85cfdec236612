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
    (per image, on the CPU: slower, for longer runs); rotate: random rotation of up to this many degrees
    either way; scale: random zoom by a factor in [1 - scale, 1 + scale] (rotation and zoom about the centre,
    bilinear, the border black, as torchvision's ``RandomAffine``).
    """

    translate: int = 0
    flip: bool = False
    randaugment: bool = False
    rotate: float = 0.0
    scale: float = 0.0

    def __call__(self, images: torch.Tensor, mean, std, generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised images (B, C, H, W) -> augmented normalised images (B, C, H, W)."""
        if self.randaugment:
            images = self._randaugment(images, mean, std, generator)
        B, C, H, W = images.shape
        if self.rotate or self.scale:
            images = self._affine(images, mean, std, generator)
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

    def _affine(self, images, mean, std, generator):
        """Each image rotated by its own angle in [-rotate, rotate] degrees and zoomed by a factor in [1 - scale, 1 + scale]."""
        B, C = images.shape[:2]
        draw = torch.rand(2, B, generator=generator, device=generator.device if generator else "cpu").to(images)
        angle = torch.deg2rad((2 * draw[0] - 1) * self.rotate)
        zoom = 1 + (2 * draw[1] - 1) * self.scale
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom  # output pixel -> input pixel: rotate back, shrink
        zero = torch.zeros_like(cos)
        # (B, 2, 3); a positive angle turns the image counter-clockwise, as torchvision's RandomAffine does
        theta = torch.stack([torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1)
        grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
        m, s = _stats(mean, std, images)
        black = (-m / s).view(1, C, 1, 1)
        out = torch.nn.functional.grid_sample(
            images - black, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return out + black

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
        if self.rotate or self.scale:
            steps.append(
                v2.RandomAffine(
                    self.rotate, scale=(1 - self.scale, 1 + self.scale), interpolation=v2.InterpolationMode.BILINEAR
                )
            )
        if self.translate:
            steps.append(v2.RandomCrop(image_size, padding=self.translate, fill=0))
        if self.flip:
            steps.append(v2.RandomHorizontalFlip())
        return v2.Compose(steps)


def default_augment(dataset: Dataset, randaugment: bool = False) -> Augment:
    """Shifts of up to 1/8 of the image (4 px at 32, 3 px at 28), flips only where the data allows them."""
    return Augment(translate=max(1, dataset.image_size // 8), flip=dataset.flip, randaugment=randaugment)
