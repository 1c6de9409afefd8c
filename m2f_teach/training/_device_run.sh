# Temporary: GPU before/after, a 60-step probe, then the training run sized from the probe.
set -e
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -m m2f_teach.training._gpu_compare
python3 -m m2f_teach train --no-progress --workers 8 --steps 60 --val-every 1000 --val-images 4 --test-images 4 --out /tmp/probe/probe.safetensors | grep -v "^wrote"
T=$(python3 -c "import json; h=json.load(open('/tmp/probe/probe.json'))['history']; i=h['step'].index(10); j=h['step'].index(50); print((h['seconds'][j]-h['seconds'][i])/40)")
STEPS=$(python3 -c "print(int((390 - 25) / $T * 0.93) // 4 * 4)")
VAL=$((STEPS / 4))
echo "probe: $T s/step (steps 10..50) -> --steps $STEPS --val-every $VAL"
echo "$T $STEPS $VAL" > $OUT/probe.txt
python3 -m m2f_teach train --no-progress --workers 8 --steps $STEPS --val-every $VAL --max-seconds 390 --out $OUT/shapes_small.safetensors 2>&1 | tee $OUT/train_log.txt
