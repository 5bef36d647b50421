"""A compact two-level VQ-VAE-2 (Razavi et al. 2019) of aligned faces at 128 px: the
"vqvae" projector's network, trained here on the generator trainer's real faces.

    lf train-vqvae --out runs/vqvae --hours 1            # resumes from runs/vqvae/last.pt
    lf extract MANIFEST --projector vqvae --projector-file runs/vqvae/vqvae.safetensors -o CODES

Layout after rosinality's vq-vae-2-pytorch, with smaller channel counts for a CPU budget
(CONFIG: ch 48, residual 24, two codebooks of 512 x 64; 0.4 M parameters):

    x (B, 3, 128, 128) in [-1, 1]
    enc_b: stride 4      -> (B, ch, 32, 32)
    enc_t: stride 2      -> (B, ch, 16, 16) -> 1x1 conv -> quantize_t -> id_t (B, 16, 16)
    dec_t(quant_t)       -> (B, dim, 32, 32), concatenated with enc_b
                         -> 1x1 conv -> quantize_b -> id_b (B, 32, 32)
    dec(upsample(quant_t) ++ quant_b): stride 4 -> (B, 3, 128, 128)

Codebooks are learnt by exponential moving averages (no codebook loss); codes that go
unused are restarted from the batch's encoder outputs (as in Jukebox), so the codebook does
not collapse onto a few entries. Loss: |dec - x|^2 + beta |enc - sg(quant)|^2, beta 0.25.

Trained by lf_core.lab.train_vqvae; its projector is lf_core.lab.projectors.VQVAEProjector
(which feeds it crops through projectors.to_input).
"""

import torch
from torch import nn
from torch.nn import functional as F

SIZE = 128  # faces are area-downsampled from 256 to this
CONFIG = {"size": SIZE, "ch": 48, "res_ch": 24, "n_res": 2, "dim": 64, "n_embed": 512}


class Quantize(nn.Module):
    """Nearest-codebook-entry quantiser with an EMA codebook. input (..., dim)."""

    def __init__(self, dim, n_embed, decay=0.99, eps=1e-5, restart=1.0):
        super().__init__()
        self.dim, self.n_embed, self.decay, self.eps = dim, n_embed, decay, eps
        self.restart = restart  # EMA count under which an entry counts as dead
        self.register_buffer("embed", torch.randn(dim, n_embed))  # (dim, K)
        self.register_buffer("cluster_size", torch.zeros(n_embed))  # (K,) EMA counts
        self.register_buffer("embed_avg", self.embed.clone())  # (dim, K) EMA sums

    def forward(self, input):
        flat = input.reshape(-1, self.dim)  # (M, dim)
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed
                + self.embed.pow(2).sum(0, keepdim=True))  # (M, K)
        ind = dist.argmin(1)  # (M,)
        quant = self.embed_code(ind).view_as(input)
        if self.training:
            with torch.no_grad():
                count = torch.bincount(ind, minlength=self.n_embed).type(flat.dtype)  # (K,)
                total = torch.zeros_like(self.embed).index_add_(1, ind, flat.t())  # (dim, K)
                self.cluster_size.mul_(self.decay).add_(count, alpha=1 - self.decay)
                self.embed_avg.mul_(self.decay).add_(total, alpha=1 - self.decay)
                n = self.cluster_size.sum()
                size = (self.cluster_size + self.eps) / (n + self.n_embed * self.eps) * n
                self.embed.copy_(self.embed_avg / size[None])
                dead = self.cluster_size < self.restart  # (K,) used < ~once a step lately
                if dead.any():  # restart them on random encoder outputs of this batch
                    pick = flat[torch.randint(len(flat), (int(dead.sum()),), device=flat.device)]
                    self.embed[:, dead] = pick.t()
                    self.embed_avg[:, dead] = pick.t()
                    self.cluster_size[dead] = 1.0
        diff = (quant.detach() - input).pow(2).mean()  # commitment
        quant = input + (quant - input).detach()  # straight-through gradient
        return quant, diff, ind.view(input.shape[:-1])

    def embed_code(self, ind):
        """ind (...) long -> (..., dim)."""
        return F.embedding(ind, self.embed.t())


class ResBlock(nn.Module):
    def __init__(self, ch, res_ch):
        super().__init__()
        self.conv = nn.Sequential(nn.ReLU(), nn.Conv2d(ch, res_ch, 3, padding=1),
                                  nn.ReLU(inplace=True), nn.Conv2d(res_ch, ch, 1))

    def forward(self, x):
        return x + self.conv(x)


class Encoder(nn.Module):
    """(B, cin, H, W) -> (B, ch, H / stride, W / stride); stride 4 or 2."""

    def __init__(self, cin, ch, n_res, res_ch, stride):
        super().__init__()
        if stride == 4:
            blocks = [nn.Conv2d(cin, ch // 2, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                      nn.Conv2d(ch // 2, ch, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                      nn.Conv2d(ch, ch, 3, padding=1)]
        else:
            blocks = [nn.Conv2d(cin, ch // 2, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                      nn.Conv2d(ch // 2, ch, 3, padding=1)]
        blocks += [ResBlock(ch, res_ch) for _ in range(n_res)] + [nn.ReLU(inplace=True)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class Decoder(nn.Module):
    """(B, cin, H, W) -> (B, cout, H * stride, W * stride); stride 4 or 2."""

    def __init__(self, cin, cout, ch, n_res, res_ch, stride):
        super().__init__()
        blocks = [nn.Conv2d(cin, ch, 3, padding=1)]
        blocks += [ResBlock(ch, res_ch) for _ in range(n_res)] + [nn.ReLU(inplace=True)]
        if stride == 4:
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1),
                       nn.ReLU(inplace=True),
                       nn.ConvTranspose2d(ch // 2, cout, 4, stride=2, padding=1)]
        else:
            blocks += [nn.ConvTranspose2d(ch, cout, 4, stride=2, padding=1)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class VQVAE(nn.Module):
    def __init__(self, size=SIZE, ch=48, res_ch=24, n_res=2, dim=64, n_embed=512):
        super().__init__()
        self.config = {"size": size, "ch": ch, "res_ch": res_ch, "n_res": n_res, "dim": dim,
                       "n_embed": n_embed}  # VQVAE(**config) rebuilds it
        self.size, self.n_embed = size, n_embed
        self.enc_b = Encoder(3, ch, n_res, res_ch, stride=4)
        self.enc_t = Encoder(ch, ch, n_res, res_ch, stride=2)
        self.quantize_conv_t = nn.Conv2d(ch, dim, 1)
        self.quantize_t = Quantize(dim, n_embed)
        self.dec_t = Decoder(dim, dim, ch, n_res, res_ch, stride=2)
        self.quantize_conv_b = nn.Conv2d(dim + ch, dim, 1)
        self.quantize_b = Quantize(dim, n_embed)
        self.upsample_t = nn.ConvTranspose2d(dim, dim, 4, stride=2, padding=1)
        self.dec = Decoder(dim + dim, 3, ch, n_res, res_ch, stride=4)

    @property
    def code_sizes(self):
        """(top, bottom) side of the code grids: 16, 32 at 128 px."""
        return self.size // 8, self.size // 4

    def forward(self, x):
        """x (B, 3, S, S) -> reconstruction (B, 3, S, S), commitment loss ()."""
        quant_t, quant_b, diff, _, _ = self.encode(x)
        return self.decode(quant_t, quant_b), diff

    def encode(self, x):
        enc_b = self.enc_b(x)  # (B, ch, S/4, S/4)
        enc_t = self.enc_t(enc_b)  # (B, ch, S/8, S/8)
        quant_t = self.quantize_conv_t(enc_t).permute(0, 2, 3, 1)  # (B, S/8, S/8, dim)
        quant_t, diff_t, id_t = self.quantize_t(quant_t)
        quant_t = quant_t.permute(0, 3, 1, 2)  # (B, dim, S/8, S/8)
        enc_b = torch.cat([self.dec_t(quant_t), enc_b], 1)  # (B, dim + ch, S/4, S/4)
        quant_b = self.quantize_conv_b(enc_b).permute(0, 2, 3, 1)  # (B, S/4, S/4, dim)
        quant_b, diff_b, id_b = self.quantize_b(quant_b)
        quant_b = quant_b.permute(0, 3, 1, 2)  # (B, dim, S/4, S/4)
        return quant_t, quant_b, diff_t + diff_b, id_t, id_b

    def decode(self, quant_t, quant_b):
        """(B, dim, S/8, S/8), (B, dim, S/4, S/4) -> (B, 3, S, S)."""
        return self.dec(torch.cat([self.upsample_t(quant_t), quant_b], 1))

    def decode_code(self, id_t, id_b):
        """codebook indices (B, S/8, S/8), (B, S/4, S/4) long -> (B, 3, S, S)."""
        quant_t = self.quantize_t.embed_code(id_t).permute(0, 3, 1, 2)
        quant_b = self.quantize_b.embed_code(id_b).permute(0, 3, 1, 2)
        return self.decode(quant_t, quant_b)
