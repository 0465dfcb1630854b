package org.kernels4j.autotune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.kernels4j.DType;
import org.kernels4j.tuning.Parameters;
import org.kernels4j.tuning.Tuning;
import org.kernels4j.tuning.TuningLookup;

/** The on-disk cache: round trip, merging, damaged files, stale entries. */
class TuningCacheTest {

    @TempDir
    Path dir;

    final List<String> warnings = new ArrayList<>();
    final FakeDevice device = new FakeDevice("Cache Test Device (R) 9000");

    TuningCache cache() {
        return new TuningCache(dir, warnings::add);
    }

    static TuningCache.Result result(int mode, double millis, boolean isDefault) {
        return new TuningCache.Result(Map.of("MODE", mode), TuningCache.OK, millis, 5, isDefault, null,
                Instant.now().toString());
    }

    TuningCache.Entry entry(String bucket, String sourceHash, String problem, TuningCache.Result... results) {
        DeviceKey k = DeviceKey.of(device);
        return new TuningCache.Entry(k.backend(), k.device(), k.driver(), k.library(), sourceHash,
                SyntheticWorkload.SPACE.kernelId(), "float32", bucket, problem, true, Instant.now().toString(),
                List.of(results));
    }

    CacheLookup lookup() {
        return new CacheLookup(cache(), new ShippedDefaults(getClass().getClassLoader(), warnings::add));
    }

    @Test
    void roundTripKeepsEveryResult() throws IOException {
        TuningCache c = cache();
        DeviceKey key = DeviceKey.of(device);
        assertEquals("test-cache-test-device-9000.json", key.fileName());
        String hash = SyntheticWorkload.SPACE.sourceHash();
        c.merge(key, List.of(entry("n1", hash, "p", result(0, 3.0, true), result(1, 1.5, false))));
        List<TuningCache.Entry> read = cache().entries(key);
        assertEquals(1, read.size());
        TuningCache.Entry e = read.get(0);
        assertEquals(2, e.results().size());
        assertEquals(1, e.best().orElseThrow().parameters().get("MODE"));
        assertEquals(3.0, e.defaultResult().orElseThrow().millis());
        assertEquals(key.driver(), e.driver());
        assertTrue(warnings.isEmpty(), warnings.toString());

        // a later run adding a candidate keeps the earlier ones; a re-measured one is replaced
        c.merge(key, List.of(entry("n1", hash, "p", result(2, 1.0, false), result(1, 1.7, false))));
        e = cache().entries(key).get(0);
        assertEquals(3, e.results().size());
        assertEquals(1.7, e.results().stream().filter(r -> r.parameters().get("MODE") == 1).findFirst().orElseThrow().millis());
        assertEquals(2, e.best().orElseThrow().parameters().get("MODE"));

        // results measured on another problem are not mixed in: the newer entry replaces them
        c.merge(key, List.of(entry("n1", hash, "other problem", result(3, 9.0, false))));
        e = cache().entries(key).get(0);
        assertEquals(List.of(3), e.results().stream().map(r -> r.parameters().get("MODE")).toList());
    }

    @Test
    void lookupReturnsTheFastestVerifiedResult() throws IOException {
        String hash = SyntheticWorkload.SPACE.sourceHash();
        TuningCache.Result rejected = new TuningCache.Result(Map.of("MODE", 2), TuningCache.REJECTED, Double.NaN, 0,
                false, "wrong", Instant.now().toString());
        cache().merge(DeviceKey.of(device), List.of(entry("n7", hash, "p", result(0, 2.0, true), result(4, 1.0, false),
                rejected)));
        Optional<TuningLookup.Found> f = lookup().find(device, SyntheticWorkload.SPACE, DType.FLOAT32, "n7");
        assertEquals(Parameters.of("MODE", 4), f.orElseThrow().parameters());
        assertEquals(Tuning.Source.TUNED, f.get().source());
        assertTrue(f.get().origin().contains(dir.toString()), f.get().origin());
        assertTrue(lookup().find(device, SyntheticWorkload.SPACE, DType.FLOAT32, "n8").isEmpty(), "other bucket");
        assertTrue(lookup().find(device, SyntheticWorkload.SPACE, DType.BFLOAT16, "n7").isEmpty(), "other dtype");
    }

    @Test
    void staleSourceHashOrDriverIsIgnored() throws IOException {
        DeviceKey k = DeviceKey.of(device);
        cache().merge(k, List.of(entry("n1", "0123456789abcdef", "p", result(4, 1.0, false))));
        assertTrue(lookup().find(device, SyntheticWorkload.SPACE, DType.FLOAT32, "n1").isEmpty(),
                "an entry for another kernel source must not be used");
        FakeDevice newDriver = new FakeDevice(device.name(), device.vendor(), "fakearch", "2.0", 256);
        cache().merge(k, List.of(entry("n2", SyntheticWorkload.SPACE.sourceHash(), "p", result(4, 1.0, false))));
        assertTrue(lookup().find(device, SyntheticWorkload.SPACE, DType.FLOAT32, "n2").isPresent());
        assertTrue(lookup().find(newDriver, SyntheticWorkload.SPACE, DType.FLOAT32, "n2").isEmpty(),
                "an entry measured under driver 1.0 is stale under driver 2.0");
        assertEquals(cache().fileFor(k), cache().fileFor(DeviceKey.of(newDriver)), "one file per device");
    }

    @Test
    void corruptFileIsReportedMovedAsideAndReplaced() throws IOException {
        DeviceKey k = DeviceKey.of(device);
        Files.createDirectories(dir);
        Path f = cache().fileFor(k);
        Files.writeString(f, "{ this is not json");
        assertTrue(lookup().find(device, SyntheticWorkload.SPACE, DType.FLOAT32, "n1").isEmpty(), "no crash, no data");
        assertEquals(1, warnings.size(), warnings.toString());
        assertTrue(warnings.get(0).contains("cannot be parsed") && warnings.get(0).contains("moved aside"), warnings.get(0));
        assertFalse(Files.exists(f));
        assertEquals(1, aside(".corrupt-").size());
        assertEquals("{ this is not json", Files.readString(aside(".corrupt-").get(0)), "the damaged file is kept");
        cache().merge(k, List.of(entry("n1", SyntheticWorkload.SPACE.sourceHash(), "p", result(1, 1.0, false))));
        assertEquals(1, cache().entries(k).size(), "writing after the damage works");
    }

    @Test
    void truncatedFileIsReportedAndMovedAsideWhenMerging() throws IOException {
        DeviceKey k = DeviceKey.of(device);
        TuningCache c = cache();
        c.merge(k, List.of(entry("n1", "h", "p", result(1, 1.0, false)), entry("n2", "h", "p", result(1, 1.0, false))));
        Path f = c.fileFor(k);
        byte[] whole = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(whole, whole.length / 2));
        c.merge(k, List.of(entry("n3", "h", "p", result(1, 1.0, false))));
        assertEquals(1, warnings.size(), warnings.toString());
        assertTrue(warnings.get(0).contains("moved aside"), warnings.get(0));
        assertEquals(1, aside(".corrupt-").size());
        assertEquals(List.of("n3"), c.entries(k).stream().map(TuningCache.Entry::bucket).toList());

        Files.write(f, new byte[0]);
        assertTrue(c.entries(k).isEmpty());
        assertEquals(2, aside(".corrupt-").size(), "an empty file is set aside too");
    }

    @Test
    void fileOfAnotherFormatVersionIsSetAside() throws IOException {
        DeviceKey k = DeviceKey.of(device);
        Files.createDirectories(dir);
        Files.writeString(cache().fileFor(k), "{\"format\": 99, \"entries\": []}", StandardCharsets.UTF_8);
        assertTrue(cache().entries(k).isEmpty());
        assertTrue(warnings.get(0).contains("format 99"), warnings.get(0));
        assertEquals(1, aside(".foreign-").size());
    }

    @Test
    void exportAndImportMoveEntriesBetweenMachines() throws IOException {
        DeviceKey k = DeviceKey.of(device);
        cache().merge(k, List.of(entry("n1", "h", "p", result(1, 1.0, false))));
        Path bundle = dir.resolve("export/bundle.json");
        assertEquals(1, cache().exportTo(bundle));
        TuningCache other = new TuningCache(dir.resolve("other"), warnings::add);
        assertEquals(1, other.importFrom(bundle));
        assertEquals(cache().entries(k), other.entries(k));
        assertEquals(1, cache().clear());
        assertTrue(cache().entries(k).isEmpty());
        assertTrue(warnings.isEmpty(), warnings.toString());
    }

    private List<Path> aside(String marker) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().contains(marker)).toList();
        }
    }
}
