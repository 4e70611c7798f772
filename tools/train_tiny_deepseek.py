#!/usr/bin/env python3
"""Trains the tiny DeepSeek-V2 models whose routing means something (tests/data/trained/).

Random checkpoints cannot say what device-limited routing costs: their gates carry no meaning.
These models are trained, on CPU in minutes, with transformers' own DeepseekV2ForCausalLM on the
Python standard library's sources as Debian ships them (/usr/lib/python3.11/*.py, package
libpython3.11-stdlib; the PSF License Agreement, /usr/lib/python3.11/LICENSE.txt, allows copying
and redistribution with its notice). Two models share everything but the gate:
  tiny_group_limited  topk_method group_limited_greedy, 8 groups, topk_group 3 (DeepSeek-V2's)
  tiny_greedy         topk_method greedy (DeepSeek-V2-Lite's)
both with 64 routed experts, top-6, one shared expert, one dense layer then two MoE layers, and
DeepSeek-V2's expert-level balance loss (plus its device-level loss over the 8 groups for the
group-limited model), added through a hook on the gate since transformers computes none.

Every 10th source file (sorted by name) is held out; heldout.jsonl holds documents of whole lines
cut from them (at most 448 tokens each). The byte-level BPE tokenizer (DeepSeek-V2's shape, see train_test_tokenizer.py)
is trained on the training files only.

Run with the fixture venv (tools/requirements-fixtures.txt):
  .venv-fixtures/bin/python tools/train_tiny_deepseek.py [--steps 1000] [--out tests/data/trained]
Deterministic for a given seed, torch build and thread count (--threads, default 1: with
more, OpenMP waits dominate the small expert matmuls on a shared 2-core machine); the README
(tools/README-trained.md) records the run that made the committed files.
"""

import argparse
import hashlib
import json
import math
import os
import pathlib
import shutil
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402,E501
from transformers import DeepseekV2Config, DeepseekV2ForCausalLM  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from train_test_tokenizer import ASSISTANT, BOS, EOS, SPLIT_REGEXES, USER  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
SOURCE_DIR = pathlib.Path("/usr/lib/python3.11")
SEED = 20261128
VOCAB = 2048
SEQ_LEN = 256
HELDOUT_DOC_TOKENS = 448
HELDOUT_DOCS = 48

ARCH = dict(
    vocab_size=VOCAB, hidden_size=128, intermediate_size=384, num_hidden_layers=3,
    first_k_dense_replace=1, num_attention_heads=4, num_key_value_heads=4,
    q_lora_rank=None, kv_lora_rank=32, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
    n_routed_experts=64, num_experts_per_tok=6, moe_intermediate_size=32, n_shared_experts=1,
    routed_scaling_factor=1.0, norm_topk_prob=False, scoring_func="softmax", moe_layer_freq=1,
    hidden_act="silu", rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None,
    max_position_embeddings=512, tie_word_embeddings=False, attention_bias=False,
    initializer_range=0.02, aux_loss_alpha=0.01, seq_aux=False, bos_token_id=1, eos_token_id=2,
)
MODELS = {
    "tiny_group_limited": dict(topk_method="group_limited_greedy", n_group=8, topk_group=3),
    "tiny_greedy": dict(topk_method="greedy", n_group=1, topk_group=1),
}
DEVICE_BALANCE_ALPHA = 0.05  # DeepSeek-V2's alpha_2, over the 8 groups (group-limited model)


def corpus():
    """(train_files, heldout_files): (name, text) in name order; every 10th file held out."""
    files = sorted(p for p in SOURCE_DIR.glob("*.py") if not p.name.startswith("_sysconfigdata"))
    if not files:
        sys.exit(f"no Python sources under {SOURCE_DIR}: install Debian's libpython3.11-stdlib")
    pairs = [(p.name, p.read_text(encoding="utf-8")) for p in files]
    heldout = [pair for i, pair in enumerate(pairs) if i % 10 == 5]
    train = [pair for i, pair in enumerate(pairs) if i % 10 != 5]
    return train, heldout


def heldout_documents(heldout, tok):
    """Documents of whole lines, each at most HELDOUT_DOC_TOKENS tokens with BOS (so a document,
    its echo and one generated token fit the 512-token context in one window), HELDOUT_DOCS of
    them spread evenly over the held-out files."""
    def length(text):
        return len(tok.encode(text).ids)

    docs = []
    for name, text in heldout:
        chunk = ""
        for line in text.splitlines(keepends=True):
            if chunk and length(chunk + line) > HELDOUT_DOC_TOKENS:
                if chunk.strip():
                    docs.append({"source": name, "text": chunk.rstrip("\n")})
                chunk = ""
            if length(line) <= HELDOUT_DOC_TOKENS:
                chunk += line
        if chunk.strip():
            docs.append({"source": name, "text": chunk.rstrip("\n")})
    step = max(1, len(docs) // HELDOUT_DOCS)
    return docs[::step][:HELDOUT_DOCS]


def train_tokenizer(train):
    tok = Tokenizer(models.BPE())
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False) for r in SPLIT_REGEXES] +
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    pad = "<｜pad｜>"
    special = [AddedToken(t, special=True, normalized=False) for t in (pad, BOS, EOS, USER, ASSISTANT)]
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, show_progress=False,
                                  special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((text for _, text in train), trainer=trainer)
    assert tok.token_to_id(BOS) == 1 and tok.token_to_id(EOS) == 2, "special ids moved"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B:1", special_tokens=[(BOS, 1)])
    return tok


def tokenizer_config():
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS, "eos_token": EOS, "pad_token": "<｜pad｜>",
        "add_bos_token": True, "add_eos_token": False, "model_max_length": ARCH["max_position_embeddings"],
        "clean_up_tokenization_spaces": False, "legacy": True,
        "chat_template": "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                         "{{ 'User: ' + message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}"
                         "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
                         "{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}"
                         "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
    }


def token_stream(tok, files):
    ids = []
    for _, text in files:
        ids.append(1)  # BOS starts every file, as in serving
        ids.extend(tok.encode(text, add_special_tokens=False).ids)
    return torch.tensor(ids, dtype=torch.long)


class BalanceLoss:
    """DeepSeek-V2's balance losses, computed from each MoE gate's input and selection."""

    def __init__(self, model, config, device_groups):
        self.terms = []
        self.loads = []
        self.k = config.num_experts_per_tok
        self.experts = config.n_routed_experts
        self.groups = device_groups
        for layer in model.model.layers:
            gate = getattr(layer.mlp, "gate", None)
            if isinstance(gate, transformers.models.deepseek_v2.modeling_deepseek_v2.DeepseekV2MoEGate):
                gate.register_forward_hook(self._hook)

    def _hook(self, gate, inputs, output):
        hidden = inputs[0].reshape(-1, inputs[0].shape[-1]).float()
        scores = F.linear(hidden, gate.weight.float()).softmax(dim=-1)  # [T, E]
        topk_idx = output[0]
        tokens = scores.shape[0]
        counts = torch.zeros(self.experts).index_add_(0, topk_idx.reshape(-1),
                                                      torch.ones(topk_idx.numel()))
        f = counts * self.experts / (self.k * tokens)
        p = scores.mean(dim=0)
        loss = ARCH["aux_loss_alpha"] * (f * p).sum()
        if self.groups > 1:
            fg = f.view(self.groups, -1).mean(dim=1)
            pg = p.view(self.groups, -1).sum(dim=1)
            loss = loss + DEVICE_BALANCE_ALPHA * (fg * pg).sum()
        self.terms.append(loss)
        self.loads.append(counts)

    def take(self):
        loss = sum(self.terms) if self.terms else torch.zeros(())
        loads = self.loads
        self.terms, self.loads = [], []
        return loss, loads


def evaluate(model, ids, windows=24):
    """Mean next-token loss over `windows` fixed windows of the held-out stream."""
    model.eval()
    starts = torch.linspace(0, len(ids) - SEQ_LEN - 2, windows).long()
    with torch.no_grad():
        batch = torch.stack([ids[s:s + SEQ_LEN] for s in starts])
        loss = model(input_ids=batch, labels=batch).loss.item()
    model.train()
    return loss


def train_one(name, gate, tok, train_ids, heldout_ids, args, out_dir):
    torch.manual_seed(args.seed)
    config = DeepseekV2Config(**ARCH, **gate)
    model = DeepseekV2ForCausalLM(config)
    model.train()
    balance = BalanceLoss(model, config, gate["n_group"] if gate["n_group"] > 1 else 1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, args.steps // 20)

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(args.seed)
    log = []
    start = time.time()
    for step in range(args.steps):
        starts = torch.randint(0, len(train_ids) - SEQ_LEN - 1, (args.batch,), generator=gen)
        batch = torch.stack([train_ids[s:s + SEQ_LEN] for s in starts])
        out = model(input_ids=batch, labels=batch)
        aux, loads = balance.take()
        loss = out.loss + aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            # Max over experts of (load / mean load): 1.0 is perfectly balanced.
            imbalance = max((l / l.mean()).max().item() for l in loads)
            entry = {"step": step, "train_loss": round(out.loss.item(), 4),
                     "balance_loss": round(aux.item(), 5), "max_expert_load_ratio": round(imbalance, 3),
                     "seconds": round(time.time() - start, 1)}
            if step % (args.log_every * 5) == 0 or step == args.steps - 1:
                entry["heldout_loss"] = round(evaluate(model, heldout_ids), 4)
                balance.take()
            log.append(entry)
            print(name, json.dumps(entry), flush=True)

    model.eval()
    model = model.to(torch.bfloat16)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    return log


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=pathlib.Path, default=REPO / "tests" / "data" / "trained")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--only", choices=sorted(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    train, heldout = corpus()
    digest = hashlib.sha256()
    for name, text in train + heldout:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    tok = train_tokenizer(train)
    train_ids = token_stream(tok, train)
    heldout_ids = token_stream(tok, heldout)
    docs = heldout_documents(heldout, tok)
    print(f"corpus sha256 {digest.hexdigest()}: {len(train)} training files, {len(train_ids)} tokens; "
          f"{len(heldout)} held-out files, {len(heldout_ids)} tokens, {len(docs)} held-out documents",
          flush=True)

    summary = {"seed": args.seed, "steps": args.steps, "batch": args.batch, "seq_len": SEQ_LEN,
               "lr": args.lr, "threads": args.threads, "torch": torch.__version__,
               "transformers": transformers.__version__, "corpus": str(SOURCE_DIR) + "/*.py",
               "corpus_sha256": digest.hexdigest(), "train_files": len(train),
               "train_tokens": len(train_ids), "heldout_files": [n for n, _ in heldout],
               "heldout_tokens": len(heldout_ids), "heldout_documents": len(docs),
               "architecture": ARCH, "models": {}}
    for name, gate in MODELS.items():
        if args.only and name != args.only:
            continue
        out_dir = args.out / name
        if out_dir.exists():
            shutil.rmtree(out_dir)
        log = train_one(name, gate, tok, train_ids, heldout_ids, args, out_dir)
        tok.save(str(out_dir / "tokenizer.json"))
        (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2, ensure_ascii=False) + "\n")
        with open(out_dir / "heldout.jsonl", "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
        (out_dir / "training_log.json").write_text(json.dumps({"gate": gate, "log": log}, indent=1) + "\n")
        summary["models"][name] = {"gate": gate, "final": log[-1]}
    if not args.only:
        (args.out / "training_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
