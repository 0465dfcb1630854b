package org.kernels4j.autotune;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.stream.Collectors;

import org.kernels4j.DType;
import org.kernels4j.Device;
import org.kernels4j.spi.Debug;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.Tuning;
import org.kernels4j.tuning.TuningLookup;
import org.kernels4j.tuning.TuningSpace;

/**
 * The {@link TuningLookup} that {@code kernels4j-autotune} registers with {@link java.util.ServiceLoader}: the
 * fastest verified parameters of the tuning cache for this device, driver, library version and kernel source,
 * else the shipped defaults for the device, its architecture or its vendor. Each cache file is read once
 * until {@link #refresh()}.
 */
public final class CacheLookup implements TuningLookup {

    private final TuningCache cache;
    private final ShippedDefaults shipped;
    private final Map<Path, Map<String, TuningCache.Entry>> files = new ConcurrentHashMap<>();

    /** The lookup over the default cache directory and the shipped defaults on the class path. */
    public CacheLookup() {
        this(TuningCache.atDefaultLocation(),
                new ShippedDefaults(CacheLookup.class.getClassLoader(),
                        w -> System.err.println("[kernels4j] warning: " + w)));
    }

    CacheLookup(TuningCache cache, ShippedDefaults shipped) {
        this.cache = cache;
        this.shipped = shipped;
    }

    @Override
    public Optional<Found> find(Device device, TuningSpace<?> space, DType dtype, String bucket) {
        DeviceKey key = DeviceKey.of(device);
        Path file = cache.fileFor(key);
        Map<String, TuningCache.Entry> entries = files.computeIfAbsent(file, f -> cache.entries(key).stream()
                .collect(Collectors.toMap(TuningCache.Entry::key, Function.identity(), TuningCache::mergeEntries)));
        String wanted = String.join("|", key.backend(), key.device(), key.driver(), key.library(), space.sourceHash(),
                space.kernelId(), dtype.label(), bucket);
        TuningCache.Entry e = entries.get(wanted);
        if (e != null) {
            Optional<TuningCache.Result> best = e.best();
            if (best.isPresent()) {
                TuningCache.Result r = best.get();
                return Optional.of(new Found(Parameters.of(r.parameters()), Tuning.Source.TUNED,
                        file + String.format(java.util.Locale.ROOT, ", %.3f ms", r.millis())));
            }
        } else if (Debug.enabled(2)) {
            List<String> stale = entries.values().stream()
                    .filter(x -> x.kernel().equals(space.kernelId()) && x.dtype().equals(dtype.label())
                            && x.bucket().equals(bucket))
                    .map(x -> "source " + x.sourceHash() + " driver " + x.driver() + " library " + x.library())
                    .toList();
            if (!stale.isEmpty()) {
                Debug.log(2, () -> "tuning: stale cache entries for " + space.kernelId() + " ignored (now: source "
                        + space.sourceHash() + " driver " + key.driver() + " library " + key.library() + "; cached: "
                        + stale + ")");
            }
        }
        return shipped.find(key, space, dtype, bucket)
                .map(m -> new Found(m.parameters(), Tuning.Source.SHIPPED, m.origin()));
    }

    @Override
    public void refresh() {
        files.clear();
    }
}
