package org.kernels4j.autotune;

import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;

import org.kernels4j.DType;

/**
 * Run in a child JVM by {@link ConcurrentTuningTest}: tunes the synthetic kernel for {@code count} buckets of
 * its own and writes each outcome to the cache as soon as it is done, and adds one result per bucket to an
 * entry both processes share. Arguments: cache directory, tag, count.
 */
public final class TuneIntoCacheMain {

    private TuneIntoCacheMain() {
    }

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        String tag = args[1];
        int count = Integer.parseInt(args[2]);
        FakeDevice device = new FakeDevice("Concurrent Device");
        DeviceKey key = DeviceKey.of(device);
        TuningCache cache = new TuningCache(dir, w -> {
            System.err.println("warning: " + w);
            System.exit(3);
        });
        Tuner tuner = new Tuner(new Tuner.Settings(Strategy.EXHAUSTIVE, 1, 3, 1));
        for (int i = 0; i < count; i++) {
            // 0 and 1 correct (1 faster), 2 wrong, 3 overruns, 4 correct
            Tuner.Outcome o = tuner.tune(new SyntheticWorkload(device, 50 + i, 0.3, 0.1, 0.1, 0.1, 0.3),
                    SyntheticWorkload.SPACE, device.capabilities(), null, List.of(),
                    null, Instant.now().plus(Duration.ofSeconds(30)), (p, phase) -> { });
            String bucket = SyntheticWorkload.SPACE.bucket(50 + i) + "-" + tag;
            cache.merge(key, List.of(TuningRun.entry(key, SyntheticWorkload.SPACE, DType.FLOAT32, bucket, "p",
                    o.complete(), o.results())));
            TuningCache.Result shared = new TuningCache.Result(Map.of("MODE", Math.abs(tag.hashCode() % 1000) * 1000 + i),
                    TuningCache.OK, 1.0 + i, 1, false, null, Instant.now().toString());
            cache.merge(key, List.of(TuningRun.entry(key, SyntheticWorkload.SPACE, DType.FLOAT32, "shared", "p",
                    false, List.of(shared))));
        }
    }
}
