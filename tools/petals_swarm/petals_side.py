"""The parts of the harness that run inside the PETALS virtual environment (torch,
transformers, hivemind, petals; see build_env.sh).  Called by swarm.py:

    python petals_side.py model FOLDER --blocks L [--seed S]
        a tiny randomly initialised LLaMA (hidden 128, 4 heads, vocab 1000), safetensors
    python petals_side.py identity PATH...
        create libp2p identities (RSA keys) and print one peer id per path
    python petals_side.py client FOLDER --peer MADDR --prefix P --workload JSON
        run the requests of the workload one after another (after one unreported warm-up
        request); print one JSON line each:
        {"request", "input_tokens", "output_tokens", "step_ms": [...], "chain": [[peer, start, end], ...]}

The client times each inference step as a user sees it: embedding, the remote step over the
chain of servers, final norm, LM head and greedy choice of the next token.  ``step_ms[0]``
is the time to first token (the prompt's step, session set-up included), the rest one
decoded token each.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def make_model(folder: str, blocks: int, seed: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=1000, hidden_size=128, intermediate_size=256,
                      num_hidden_layers=blocks, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=2048)
    LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    print(f"model with {blocks} blocks in {folder}")


def identities(paths: list[str]) -> None:
    from hivemind.p2p import P2P, PeerID
    for path in paths:
        if not os.path.exists(path):
            P2P.generate_identity(path)
        with open(path, "rb") as f:
            print(PeerID.from_identity(f.read()).to_base58())


def client(folder: str, peer: str, prefix: str, workload: list[dict]) -> None:
    import torch
    from petals import AutoDistributedModelForCausalLM
    torch.set_num_threads(1)
    model = AutoDistributedModelForCausalLM.from_pretrained(
        folder, initial_peers=[peer], dht_prefix=prefix, torch_dtype=torch.float32)
    inner = model.model
    gen = torch.Generator().manual_seed(0)
    print(json.dumps({"event": "client ready"}), flush=True)
    with torch.inference_mode():
        # request -1 warms the connections up (its first step opens every stream); not reported
        for i, req in enumerate([workload[0]] + workload, start=-1):
            l_in, l_out = int(req["input_tokens"]), int(req["output_tokens"])
            ids = torch.randint(0, model.config.vocab_size, (1, l_in), generator=gen)
            steps = []
            with inner.layers.inference_session(max_length=l_in + l_out) as sess:
                for t in range(l_out):
                    t0 = time.perf_counter()
                    h = sess.step(inner.embed_tokens(ids))
                    logits = model.lm_head(inner.norm(h[:, -1:]))
                    ids = logits.argmax(-1)
                    steps.append((time.perf_counter() - t0) * 1e3)
                chain = [[s.span.peer_id.to_base58(), int(s.span.start), int(s.span.end)]
                         for s in sess._server_sessions]
            if i < 0:
                continue
            print(json.dumps({"request": i, "input_tokens": l_in, "output_tokens": l_out,
                              "step_ms": steps, "chain": chain}), flush=True)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model")
    m.add_argument("folder")
    m.add_argument("--blocks", type=int, required=True)
    m.add_argument("--seed", type=int, default=0)
    i = sub.add_parser("identity")
    i.add_argument("paths", nargs="+")
    c = sub.add_parser("client")
    c.add_argument("folder")
    c.add_argument("--peer", required=True)
    c.add_argument("--prefix", required=True)
    c.add_argument("--workload", required=True, help="JSON list of {input_tokens, output_tokens}")
    a = ap.parse_args(argv)
    if a.cmd == "model":
        make_model(a.folder, a.blocks, a.seed)
    elif a.cmd == "identity":
        identities(a.paths)
    else:
        client(a.folder, a.peer, a.prefix, json.loads(a.workload))
        # hivemind's background threads can keep the interpreter from exiting; the results
        # are out, so leave at once (the harness tears the process group down anyway)
        print(json.dumps({"event": "client done"}), flush=True)
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
