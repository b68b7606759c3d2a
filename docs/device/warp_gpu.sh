#!/bin/bash
# Three warp runs side by side on one GPU, each stopped by the clock (the cosine follows the time budget).
# A: the shipped warp fine-tuned; B: the shipped design from scratch; C: --config large from scratch.
set -u
export FIPVITON_STLPIPS_VGG=.devdata/vgg2.pth PYTHONPATH=src PYTHONUNBUFFERED=1
MIN=${MIN:-6.5}
THREADS=${THREADS:-4}
P=.devdata/warp_all
common="--pack $P --batch-size 64 --steps 100000 --time-limit $MIN --mixed-precision bf16 --threads $THREADS --ckpt-every 100000 --sample-every 3000 --log-every 100 --seed 0"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m fipviton.cli train warp $common --init-weights src/fipviton/weights/warp --lr 3e-4 --warmup 100 --out /tmp/wA > /tmp/A.out 2>&1 &
python3 -m fipviton.cli train warp $common --fine-channels 16 --lr 1e-3 --warmup 300 --out /tmp/wB > /tmp/B.out 2>&1 &
python3 -m fipviton.cli train warp $common --config large --lr 1e-3 --warmup 300 --out /tmp/wC > /tmp/C.out 2>&1 &
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
wait
for r in A B C; do
  tail -n 4 /tmp/$r.out
  # float16 storage: the large warp's float32 file (25.6 MB) is over the 16 MiB a returned file may have
  python3 -c "import sys,torch; from fipviton.warp import WarpNet; WarpNet.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[1], dtype=torch.float16)" /tmp/w$r/final
  (cd /tmp/w$r && tar cf $OUT/w$r.tar final train.log metrics.jsonl samples 2>/dev/null)
  cp /tmp/$r.out $OUT/$r.out
done
ls -la $OUT
