package org.kernels4j.autotune;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.stream.Stream;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

/**
 * The on-disk tuning cache: one JSON file per device ({@code <backend>-<device>.json}) under
 * {@code ${KERNELS4J_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kernels4j}} (system property {@code kernels4j.cache}
 * first).
 *
 * <p>Each {@link Entry} is keyed by backend, device, driver, library version, kernel source hash, kernel, dtype
 * and shape bucket, and keeps one {@link Result} per parameter set, so a later run that adds candidates
 * keeps the others. Writers take an in-JVM lock and a file lock on {@code <file>.lock}, re-read the file,
 * merge, write a temporary file and rename it over the old one: readers never see a partial file and two
 * processes writing at once lose nothing. A file that cannot be parsed, or was written in another format
 * version, is reported, renamed aside with a {@code .corrupt-<time>} or {@code .foreign-<time>} suffix and
 * treated as empty.
 */
final class TuningCache {

    /** The file format version this code reads and writes. */
    static final int FORMAT = 1;

    /** Result statuses. */
    static final String OK = "ok";
    static final String REJECTED = "rejected";
    static final String ABANDONED = "abandoned";

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(SerializationFeature.INDENT_OUTPUT)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .setDefaultPropertyInclusion(JsonInclude.Include.NON_NULL);
    private static final Map<Path, ReentrantLock> IN_JVM_LOCKS = new ConcurrentHashMap<>();
    private static final DateTimeFormatter SUFFIX_TIME =
            DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss-SSS").withZone(ZoneOffset.UTC);

    /**
     * One measured parameter set.
     *
     * @param parameters the parameters
     * @param status     {@link #OK} (verified and timed), {@link #REJECTED} (wrong output or touched the
     *                   canaries) or {@link #ABANDONED} (stopped early: clearly slower than the best)
     * @param millis     median time in milliseconds (for abandoned, the median of the runs made); NaN when
     *                   rejected; for the default, when the search's fastest was another candidate, that
     *                   candidate's time over the median ratio of their paired runs (the tuner's {@code duel})
     * @param samples    timed runs (for such a default, the pairs)
     * @param defaultParameters whether these are the kernel's default parameters
     * @param note       why it was rejected, or null
     * @param measured   when, ISO-8601
     */
    record Result(Map<String, Integer> parameters, String status, double millis, int samples, boolean defaultParameters,
                  String note, String measured) {
        Result {
            parameters = new LinkedHashMap<>(Objects.requireNonNull(parameters, "parameters"));
            Objects.requireNonNull(status, "status");
            Objects.requireNonNull(measured, "measured");
        }

        boolean ok() {
            return OK.equals(status);
        }
    }

    /**
     * The results for one kernel, dtype and shape bucket on one device.
     *
     * @param problem  the problem the results were measured on (results of different problems are not mixed)
     * @param complete whether the tuning run of this entry finished its strategy within the budget
     * @param updated  when last written, ISO-8601
     */
    record Entry(String backend, String device, String driver, String library, String sourceHash, String kernel,
                 String dtype, String bucket, String problem, boolean complete, String updated,
                 List<Result> results) {
        Entry {
            for (String f : new String[] {backend, device, driver, library, sourceHash, kernel, dtype, bucket,
                    updated}) {
                Objects.requireNonNull(f, "every key field of a cache entry must be present");
            }
            problem = problem == null ? "" : problem;
            results = List.copyOf(results == null ? List.of() : results);
        }

        /** The key without the results. */
        String key() {
            return String.join("|", backend, device, driver, library, sourceHash, kernel, dtype, bucket);
        }

        /** The fastest verified result. */
        Optional<Result> best() {
            return results.stream().filter(Result::ok).min(Comparator.comparingDouble(Result::millis));
        }

        /** The result of the default parameters, when measured. */
        Optional<Result> defaultResult() {
            return results.stream().filter(r -> r.defaultParameters() && r.ok()).findFirst();
        }
    }

    /** A cache file's contents. */
    record Content(int format, String backend, String device, String deviceName, List<Entry> entries) {
        Content {
            entries = List.copyOf(entries == null ? List.of() : entries);
        }
    }

    /** Several cache files' contents, as written by {@code kernels4j cache export}. */
    record Export(int format, String kind, List<Content> files) {
        static final String KIND = "kernels4j-tuning-cache-export";

        Export {
            files = List.copyOf(files == null ? List.of() : files);
        }
    }

    private final Path directory;
    private final Consumer<String> warnings;

    /**
     * @param directory where the files are (created on first write)
     * @param warnings  receives one line per problem found (corrupt file moved aside, ...)
     */
    TuningCache(Path directory, Consumer<String> warnings) {
        this.directory = directory.toAbsolutePath().normalize();
        this.warnings = warnings;
    }

    /** A cache in {@link #defaultDirectory()} that prints warnings to standard error. */
    static TuningCache atDefaultLocation() {
        return new TuningCache(defaultDirectory(), w -> System.err.println("[kernels4j] warning: " + w));
    }

    /** {@code kernels4j.cache}, else {@code $KERNELS4J_CACHE}, else {@code ${XDG_CACHE_HOME:-~/.cache}/kernels4j}. */
    static Path defaultDirectory() {
        String p = System.getProperty("kernels4j.cache");
        if (p == null || p.isBlank()) {
            p = System.getenv("KERNELS4J_CACHE");
        }
        if (p != null && !p.isBlank()) {
            return Paths.get(p);
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Paths.get(xdg) : Paths.get(System.getProperty("user.home"), ".cache");
        return base.resolve("kernels4j");
    }

    Path directory() {
        return directory;
    }

    Path fileFor(DeviceKey key) {
        return directory.resolve(key.fileName());
    }

    /** The cache files present, sorted. */
    List<Path> files() {
        if (!Files.isDirectory(directory)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(directory)) {
            return s.filter(f -> f.getFileName().toString().endsWith(".json") && Files.isRegularFile(f))
                    .sorted().toList();
        } catch (IOException e) {
            warnings.accept("cannot list tuning cache " + directory + ": " + e);
            return List.of();
        }
    }

    /** The entries of {@code key}'s file (current or stale); empty when missing or unreadable. */
    List<Entry> entries(DeviceKey key) {
        return read(fileFor(key)).map(Content::entries).orElse(List.of());
    }

    /**
     * Reads a cache file. Never throws: a missing file is empty; a corrupt or foreign one is reported, moved
     * aside (under the lock, after checking again) and empty.
     */
    Optional<Content> read(Path file) {
        Parsed p = parse(file);
        if (p.problem() == null) {
            return Optional.ofNullable(p.content());
        }
        try {
            return locked(file, () -> {
                Parsed again = parse(file);
                if (again.problem() != null) {
                    setAside(file, again);
                    return Optional.<Content>empty();
                }
                return Optional.ofNullable(again.content());
            });
        } catch (IOException | UncheckedIOException e) {
            warnings.accept("tuning cache " + file + " is unreadable (" + p.problem() + ") and could not be moved aside: " + e);
            return Optional.empty();
        }
    }

    /** Merges {@code updates} into {@code key}'s file. */
    void merge(DeviceKey key, Collection<Entry> updates) throws IOException {
        merge(fileFor(key), key.backend(), key.device(), key.deviceName(), updates);
    }

    /**
     * Merges entries into a file under the lock: entries with a new key are added; for an existing key, results
     * measured on the same problem are united (the newer measurement of a parameter set wins), and results of
     * another problem are replaced by the newer entry's.
     */
    void merge(Path file, String backend, String device, String deviceName, Collection<Entry> updates)
            throws IOException {
        Files.createDirectories(directory);
        locked(file, () -> {
            Parsed p = parse(file);
            if (p.problem() != null) {
                setAside(file, p);
            }
            LinkedHashMap<String, Entry> byKey = new LinkedHashMap<>();
            String name = deviceName;
            if (p.content() != null) {
                for (Entry e : p.content().entries()) {
                    byKey.merge(e.key(), e, TuningCache::mergeEntries);
                }
                if (name == null) {
                    name = p.content().deviceName();
                }
            }
            for (Entry e : updates) {
                byKey.merge(e.key(), e, TuningCache::mergeEntries);
            }
            write(file, new Content(FORMAT, backend, device, name, new ArrayList<>(byKey.values())));
            return null;
        });
    }

    /** Deletes every cache file (each under its lock; lock files stay, other processes may hold them); returns how many. */
    int clear() throws IOException {
        int n = 0;
        for (Path f : files()) {
            boolean deleted = locked(f, () -> Files.deleteIfExists(f));
            n += deleted ? 1 : 0;
        }
        return n;
    }

    /** Writes every readable cache file into one export file; returns the number of entries. */
    int exportTo(Path target) throws IOException {
        List<Content> all = new ArrayList<>();
        int n = 0;
        for (Path f : files()) {
            Optional<Content> c = read(f);
            if (c.isPresent()) {
                all.add(c.get());
                n += c.get().entries().size();
            }
        }
        Path abs = target.toAbsolutePath();
        if (abs.getParent() != null) {
            Files.createDirectories(abs.getParent());
        }
        writeAtomically(abs, JSON.writeValueAsBytes(new Export(FORMAT, Export.KIND, all)));
        return n;
    }

    /**
     * Merges an export file (or a single cache file) into this cache; returns the number of entries.
     *
     * @throws IOException naming the problem when the file is not a kernels4j export of this format
     */
    int importFrom(Path source) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(source));
        } catch (IOException e) {
            throw new IOException(source + " is not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject() || !root.path("format").isInt()) {
            throw new IOException(source + " is not a kernels4j tuning cache or export (no format field)");
        }
        if (root.get("format").asInt() != FORMAT) {
            throw new IOException(source + " has format " + root.get("format").asInt() + "; this kernels4j reads "
                    + FORMAT);
        }
        List<Content> contents = root.has("files")
                ? JSON.treeToValue(root, Export.class).files()
                : List.of(JSON.treeToValue(root, Content.class));
        int n = 0;
        for (Content c : contents) {
            if (c.backend() == null || c.device() == null) {
                throw new IOException(source + ": a file without backend or device");
            }
            merge(directory.resolve(c.backend() + "-" + c.device() + ".json"), c.backend(), c.device(),
                    c.deviceName(), c.entries());
            n += c.entries().size();
        }
        return n;
    }

    static Entry mergeEntries(Entry older, Entry newer) {
        Instant a = Instant.parse(older.updated());
        Instant b = Instant.parse(newer.updated());
        Entry first = a.isAfter(b) ? newer : older;
        Entry second = a.isAfter(b) ? older : newer;
        if (!first.problem().equals(second.problem())) {
            return second;
        }
        LinkedHashMap<Map<String, Integer>, Result> results = new LinkedHashMap<>();
        for (Result r : first.results()) {
            results.put(r.parameters(), r);
        }
        for (Result r : second.results()) {
            results.merge(r.parameters(), r,
                    (x, y) -> Instant.parse(x.measured()).isAfter(Instant.parse(y.measured())) ? x : y);
        }
        return new Entry(second.backend(), second.device(), second.driver(), second.library(), second.sourceHash(),
                second.kernel(), second.dtype(), second.bucket(), second.problem(),
                first.complete() || second.complete(), second.updated(), new ArrayList<>(results.values()));
    }

    private record Parsed(Content content, String problem, String suffix) {
    }

    private static Parsed parse(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            return new Parsed(null, null, null);
        } catch (IOException e) {
            return new Parsed(null, "unreadable: " + e, "corrupt");
        }
        try {
            JsonNode root = JSON.readTree(bytes);
            if (root == null || root.isMissingNode()) {
                return new Parsed(null, "empty or truncated", "corrupt");
            }
            if (!root.isObject() || !root.path("format").isInt()) {
                return new Parsed(null, "not a kernels4j tuning cache (no format field)", "corrupt");
            }
            int format = root.get("format").asInt();
            if (format != FORMAT) {
                return new Parsed(null, "written in format " + format + " (this kernels4j reads " + FORMAT + ")",
                        "foreign");
            }
            Content c = JSON.treeToValue(root, Content.class);
            for (Entry e : c.entries()) {
                Objects.requireNonNull(e, "null entry");
                for (Result r : e.results()) {
                    Objects.requireNonNull(r, "null result");
                }
            }
            return new Parsed(c, null, null);
        } catch (IOException | RuntimeException e) {
            String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage().lines().findFirst().orElse("");
            return new Parsed(null, "cannot be parsed: " + m, "corrupt");
        }
    }

    private void setAside(Path file, Parsed p) throws IOException {
        String base = file.getFileName() + "." + p.suffix() + "-" + SUFFIX_TIME.format(Instant.now());
        Path aside = file.resolveSibling(base);
        for (int i = 1; Files.exists(aside); i++) {
            aside = file.resolveSibling(base + "-" + i);
        }
        try {
            Files.move(file, aside, StandardCopyOption.ATOMIC_MOVE);
        } catch (NoSuchFileException e) {
            return;
        }
        warnings.accept("tuning cache " + file + " " + p.problem() + "; moved aside to " + aside
                + " and starting afresh");
    }

    private void write(Path file, Content content) throws IOException {
        writeAtomically(file, JSON.writeValueAsBytes(content));
    }

    private static void writeAtomically(Path file, byte[] bytes) throws IOException {
        Path tmp = Files.createTempFile(file.getParent(), file.getFileName() + ".", ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer b = ByteBuffer.wrap(bytes);
                while (b.hasRemaining()) {
                    ch.write(b);
                }
                ch.force(true);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    @FunctionalInterface
    private interface IoAction<T> {
        T run() throws IOException;
    }

    private static Path lockFile(Path file) {
        return file.resolveSibling(file.getFileName() + ".lock");
    }

    private <T> T locked(Path file, IoAction<T> action) throws IOException {
        Path key = file.toAbsolutePath().normalize();
        ReentrantLock jvmLock = IN_JVM_LOCKS.computeIfAbsent(key, k -> new ReentrantLock());
        jvmLock.lock();
        try {
            Files.createDirectories(key.getParent());
            try (FileChannel ch = FileChannel.open(lockFile(key), StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
                FileLock lock = ch.lock();
                try {
                    return action.run();
                } finally {
                    lock.release();
                }
            }
        } finally {
            jvmLock.unlock();
        }
    }
}
