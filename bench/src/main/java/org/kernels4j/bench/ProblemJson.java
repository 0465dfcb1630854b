package org.kernels4j.bench;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.kernels4j.Attention;
import org.kernels4j.DType;

/**
 * The problems a run would measure, as JSON for baselines written in other languages, so that the catalog
 * stays in one place: name, op, backend, dtypes, sizes, and the work per pass (FLOPs or bytes).
 */
final class ProblemJson {

    private ProblemJson() {
    }

    /** One object per problem and backend; a filter keeps the problems whose name any pattern finds. */
    static String of(Map<String, Set<DType>> backends, List<Pattern> filters) {
        List<Map<String, Object>> l = new ArrayList<>();
        for (Map.Entry<String, Set<DType>> b : backends.entrySet()) {
            BenchProblem.Set set = b.getKey().equals("cuda") ? BenchProblem.Set.GPU : BenchProblem.Set.CPU;
            for (BenchProblem p : ProblemSet.of(set)) {
                if (!filters.isEmpty() && filters.stream().noneMatch(f -> f.matcher(p.name()).find())) {
                    continue;
                }
                Map<String, Object> o = new LinkedHashMap<>();
                o.put("name", p.name());
                o.put("op", p.op().name().toLowerCase(java.util.Locale.ROOT));
                o.put("backend", b.getKey());
                o.put("dtypes", p.dtypes().stream().filter(b.getValue()::contains).map(DType::label).toList());
                switch (p.op()) {
                    case LAYER_NORM -> {
                        o.put("rows", p.rows());
                        o.put("cols", p.cols());
                    }
                    case CONV2D -> {
                        o.put("format", p.format().name());
                        o.put("n", p.n());
                        o.put("c", p.c());
                        o.put("h", p.h());
                        o.put("w", p.w());
                        o.put("k", p.k());
                        o.put("r", p.r());
                        o.put("s", p.s());
                        o.put("stride", p.stride());
                        o.put("pad", p.pad());
                        o.put("groups", p.groups());
                    }
                    case ATTENTION -> {
                        o.put("batch", p.batch());
                        o.put("heads", p.heads());
                        o.put("kv_heads", p.kvHeads());
                        o.put("seq", p.seq());
                        o.put("head_dim", p.headDim());
                        o.put("causal", p.mask() != Attention.CausalMask.NONE);
                    }
                }
                l.add(o);
            }
        }
        try {
            return new ObjectMapper().writeValueAsString(l);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
