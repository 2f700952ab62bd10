#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ with the test fixtures (valid and hostile files alike), so the
# fuzzer starts from real SAEs rather than from nothing. Idempotent; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")"
fx=../crates/interp-sae/tests/fixtures
seed() { # seed TARGET FILE [PREFIX-BYTE-OCTAL]
    local dir=corpus/$1 name
    mkdir -p "$dir"
    name=$(basename "$(dirname "$2")")_$(basename "$2")${3:+_$3}
    if [ -n "${3:-}" ]; then
        { printf "\\$3"; cat "$2"; } > "$dir/$name"
    else
        cp "$2" "$dir/$name"
    fi
}
for f in "$fx"/torch_pickle/*.pt "$fx"/openai_*/ae.pt "$fx"/hostile/*.pt; do
    seed torch_pt "$f"
    seed openai_pt "$f"
done
for f in "$fx"/torch_pickle/*.npz "$fx"/gemma_scope*/params.npz "$fx"/hostile/truncated_npz/params.npz; do
    seed npz "$f"
    seed gemma_scope_npz "$f"
done
for f in "$fx"/torch_pickle/*.npy; do seed npy "$f"; done
# Members of the .npz archives are .npy files too.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "$fx"/gemma_scope/params.npz "$fx"/torch_pickle/arrays.npz; do
    (cd "$tmp" && python3 -m zipfile -e "$OLDPWD/$f" "$(basename "$f" .npz)")
done
find "$tmp" -name '*.npy' | while read -r f; do seed npy "$f"; done
for f in $(find "$fx" -name cfg.json -o -name hyperparams.json -o -name config.json); do
    seed saelens_config "$f"
done
# saelens_dir: the first byte picks the config (0 standard, 1 jumprelu, 2 gated,
# 3 topk_rescale, 4 standard_layer_norm); the rest is sae_weights.safetensors.
i=0
for a in standard jumprelu gated topk_rescale standard_layer_norm; do
    seed saelens_dir "$fx/saelens/$a/sae_weights.safetensors" "00$i"
    i=$((i + 1))
done
seed saelens_dir "$fx/hostile/nan_threshold/sae_weights.safetensors" 001
seed saelens_dir "$fx/hostile/wrong_shape/sae_weights.safetensors" 000
seed sparsify_dir "$fx/sparsify/layers.1/sae.safetensors"
seed llama_scope_dir "$fx/llama_scope/checkpoints/final.safetensors"
for t in corpus/*; do echo "$t: $(ls "$t" | wc -l) files"; done
