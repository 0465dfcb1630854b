package org.kernels4j.bench;

import java.nio.file.Files;
import java.nio.file.Path;

/** The kernels4j checkout the command runs in: the nearest folder upwards with {@code bench/} and {@code mvnw}. */
final class RepoRoot {

    private RepoRoot() {
    }

    /** The checkout root above the working directory, or the working directory when there is none. */
    static Path find() {
        Path cwd = Path.of("").toAbsolutePath();
        for (Path p = cwd; p != null; p = p.getParent()) {
            if (Files.isDirectory(p.resolve("bench")) && Files.exists(p.resolve("mvnw"))) {
                return p;
            }
        }
        return cwd;
    }
}
