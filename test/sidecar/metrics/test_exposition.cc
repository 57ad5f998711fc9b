// The exposition writer against exact text: one HELP and TYPE per family,
// families by name and samples by labels whatever the order they came in,
// the format's escapes, values as Prometheus spells them, and the mistakes
// it refuses to write.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "metrics/exposition.h"

namespace mixlb::metrics {
namespace {

TEST_CASE("families by name, samples by labels, one HELP and TYPE each") {
  Exposition e;
  e.gauge("zeta_bytes", "Last by name.").add({{"node", "b"}}, 2).add({{"node", "a"}}, 1);
  e.counter("alpha_total", "First by name.").add(7);
  // Declared again with the same type: the same family, the first help.
  e.gauge("zeta_bytes", "Another help.").add({{"node", "c"}}, 3);
  CHECK(e.text() ==
        "# HELP alpha_total First by name.\n"
        "# TYPE alpha_total counter\n"
        "alpha_total 7\n"
        "# HELP zeta_bytes Last by name.\n"
        "# TYPE zeta_bytes gauge\n"
        "zeta_bytes{node=\"a\"} 1\n"
        "zeta_bytes{node=\"b\"} 2\n"
        "zeta_bytes{node=\"c\"} 3\n");
}

TEST_CASE("the same samples in another order give the same text") {
  Exposition a, b;
  a.gauge("m", "h").add({{"x", "1"}, {"y", "2"}}, 1).add({{"x", "1"}, {"y", "1"}}, 2);
  a.counter("n_total", "h").add(3);
  b.counter("n_total", "h").add(3);
  b.gauge("m", "h").add({{"x", "1"}, {"y", "1"}}, 2).add({{"x", "1"}, {"y", "2"}}, 1);
  CHECK(a.text() == b.text());
  CHECK(a.text().find("m{x=\"1\",y=\"1\"} 2\nm{x=\"1\",y=\"2\"} 1\n") != std::string::npos);
}

TEST_CASE("label values escape backslash, quote and newline; help escapes backslash and newline") {
  Exposition e;
  e.gauge("g", "A \"quoted\" help\\path\nsecond line.")
      .add({{"v", "back\\slash \"quote\" new\nline"}}, 1);
  CHECK(e.text() ==
        "# HELP g A \"quoted\" help\\\\path\\nsecond line.\n"
        "# TYPE g gauge\n"
        "g{v=\"back\\\\slash \\\"quote\\\" new\\nline\"} 1\n");
}

TEST_CASE("a family without samples still says what it is") {
  Exposition e;
  e.counter("mixlb_drops_total", "Drops.");
  CHECK(e.text() == "# HELP mixlb_drops_total Drops.\n# TYPE mixlb_drops_total counter\n");
}

TEST_CASE("values: integers exactly, doubles shortest, NaN and infinities as Prometheus spells them") {
  CHECK(SampleValue(std::numeric_limits<std::uint64_t>::max()).text() == "18446744073709551615");
  CHECK(SampleValue((std::uint64_t{1} << 53) + 1).text() == "9007199254740993");
  CHECK(SampleValue(-3).text() == "-3");
  CHECK(SampleValue(true).text() == "1");
  CHECK(SampleValue(false).text() == "0");
  CHECK(SampleValue(0.1).text() == "0.1");
  CHECK(SampleValue(2.5e-7).text() == "2.5e-07");
  CHECK(SampleValue(1e21).text() == "1e+21");
  CHECK(SampleValue(0.0).text() == "0");
  CHECK(SampleValue(std::nan("")).text() == "NaN");
  CHECK(SampleValue(std::numeric_limits<double>::infinity()).text() == "+Inf");
  CHECK(SampleValue(-std::numeric_limits<double>::infinity()).text() == "-Inf");
}

TEST_CASE("bytes that are not UTF-8 become U+FFFD; UTF-8 passes") {
  CHECK(valid_utf8("mix\xc3\xa9") == "mix\xc3\xa9");                 // é
  CHECK(valid_utf8("\xf0\x9f\x90\xb3") == "\xf0\x9f\x90\xb3");       // a four-byte character
  CHECK(valid_utf8("a\xff" "b") == "a\xef\xbf\xbd" "b");             // never a lead byte
  CHECK(valid_utf8("\xc0\xaf") == "\xef\xbf\xbd\xef\xbf\xbd");       // overlong '/'
  CHECK(valid_utf8("\xed\xa0\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
  CHECK(valid_utf8("\xe2\x82") == "\xef\xbf\xbd\xef\xbf\xbd");       // cut short
  CHECK(valid_utf8("\xf4\x90\x80\x80").starts_with("\xef\xbf\xbd"));  // past U+10FFFF
  Exposition e;
  e.gauge("g", "h").add({{"node", "x\xfe"}}, 1);
  CHECK(e.text().find("g{node=\"x\xef\xbf\xbd\"} 1\n") != std::string::npos);
}

TEST_CASE("names: metric and label names are checked, counters end in _total") {
  CHECK(valid_metric_name("mixlb_vip_packets_total"));
  CHECK(valid_metric_name("job:rate:sum"));
  CHECK_FALSE(valid_metric_name("9lives"));
  CHECK_FALSE(valid_metric_name("has-dash"));
  CHECK_FALSE(valid_metric_name(""));
  CHECK(valid_label_name("vip"));
  CHECK_FALSE(valid_label_name("__name__"));
  CHECK_FALSE(valid_label_name("a:b"));
  CHECK_FALSE(valid_label_name("1x"));

  Exposition e;
  CHECK_THROWS_AS(e.counter("mixlb_packets", "h"), std::invalid_argument);
  CHECK_THROWS_AS(e.gauge("bad name", "h"), std::invalid_argument);
  CHECK_THROWS_AS(e.gauge("g", "h").add({{"__reserved", "v"}}, 1), std::invalid_argument);
  e.gauge("mixlb_x_total", "a gauge may end in _total too");
  CHECK_THROWS_AS(e.counter("mixlb_x_total", "h"), std::invalid_argument);
}

TEST_CASE("two samples with the same labels are refused, not written") {
  Exposition e;
  e.gauge("g", "h").add({{"node", "a"}}, 1).add({{"node", "b"}}, 2).add({{"node", "a"}}, 3);
  CHECK_THROWS_AS(e.text(), std::logic_error);
  Exposition bare;
  bare.counter("c_total", "h").add(1).add(2);
  CHECK_THROWS_AS(bare.text(), std::logic_error);
}

}  // namespace
}  // namespace mixlb::metrics
