package org.kernels4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

import com.fasterxml.jackson.databind.JsonNode;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Loads the dashboard in headless Chromium (when it is installed: {@code .ci/run} installs Debian's
 * {@code chromium}) and checks what a person would see: every chart drawn on a canvas of non-zero size with
 * pixels painted and a legend per series, no console error or uncaught exception, no request leaving the
 * file. Saves a screenshot as {@code dashboard.png} in {@code kernels4j.bench.screenshotDir} (target/).
 *
 * <p>The dashboard is built from a synthetic history, or from the results folder named by the system property
 * {@code kernels4j.bench.results} (used to screenshot the committed results).
 */
class DashboardBrowserTest {

    @TempDir
    Path tmp;

    private static final String INSPECT = """
            JSON.stringify(Array.from(document.querySelectorAll('figure.chart')).map(function (fig) {
              var cv = fig.querySelector('canvas');
              var painted = 0;
              if (cv) {
                var px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
                for (var i = 3; i < px.length; i += 4) { if (px[i] > 0) { painted++; } }
              }
              var r = cv ? cv.getBoundingClientRect() : { width: 0, height: 0 };
              return { title: fig.querySelector('figcaption').textContent, canvas: !!cv, width: r.width,
                       height: r.height, painted: painted,
                       legend: fig.querySelectorAll('.u-legend .u-series').length };
            }))
            """;

    @Test
    void theDashboardRendersInChromiumWithoutErrors() throws Exception {
        Optional<Path> chromium = HeadlessChromium.find();
        if (chromium.isEmpty()) {
            String why = "chromium is not installed (apt-get install -y chromium); the browser check is skipped";
            System.out.println("[DashboardBrowserTest] " + why);
            Assumptions.abort(why);
        }
        String real = System.getProperty("kernels4j.bench.results");
        History h;
        if (real != null && !real.isBlank()) {
            h = History.load(List.of(Path.of(real)));
        } else {
            Path results = tmp.resolve("results");
            SyntheticResults.history(results.resolve("synthetic-2c"), "synthetic-2c", 6, 42, 0.02, 0.02,
                    "ours/cpu/float32/conv-r56/backward", 1.25);
            h = History.load(List.of(results));
        }
        Path html = tmp.resolve("dashboard.html");
        Files.writeString(html, Dashboard.render(h, h.check()), StandardCharsets.UTF_8);
        int expected = Files.readString(html).split("<figure class=\"chart\"", -1).length - 1;
        assertTrue(expected > 0);

        try (HeadlessChromium browser = new HeadlessChromium(chromium.get(), 1400, 1000)) {
            browser.open(html.toUri());
            assertEquals(String.valueOf(expected), browser.evaluate(
                    "document.body.getAttribute('data-charts-drawn')").asText(), "every chart's script ran");
            JsonNode charts = new com.fasterxml.jackson.databind.ObjectMapper().readTree(browser.evaluate(INSPECT).asText());
            assertEquals(expected, charts.size());
            for (JsonNode c : charts) {
                String t = c.path("title").asText();
                assertTrue(c.path("canvas").asBoolean(), t + ": no canvas");
                assertTrue(c.path("width").asDouble() > 100 && c.path("height").asDouble() > 50, t + ": size " + c);
                // axes, grid and at least one series line with its points
                assertTrue(c.path("painted").asInt() > 2000, t + ": only " + c.path("painted") + " pixels painted");
                assertTrue(c.path("legend").asInt() >= 2, t + ": legend " + c);
            }
            assertTrue(browser.evaluate("document.querySelectorAll('table.latest tbody tr').length").asInt() > 0,
                    "the newest run's table has rows");
            assertEquals(List.of(), browser.errors(), "console errors and exceptions");
            for (String url : browser.requests()) {
                assertTrue(url.startsWith("file:") || url.startsWith("data:"), "the page requested " + url);
            }
            Path dir = Path.of(System.getProperty("kernels4j.bench.screenshotDir", "target"));
            Files.createDirectories(dir);
            Path png = dir.resolve("dashboard.png");
            Files.write(png, browser.screenshot());
            Files.copy(html, dir.resolve("dashboard.html"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            assertTrue(Files.size(png) > 10_000, "screenshot " + png);
            System.out.println("[DashboardBrowserTest] " + expected + " charts rendered; screenshot " + png.toAbsolutePath());
        }
    }
}
