#pragma once
// A writer of the Prometheus text exposition format, version 0.0.4: what a
// scrape of /metrics answers. It knows the format and nothing of mixlb, so
// collect.h decides what to say and this file only how to say it.
//
// Families are declared with their type and help and collect samples; text()
// writes each family once (one HELP and one TYPE line, then its samples),
// families in name order and samples in label order. Sorting makes the
// output the same for the same figures whatever order they were added in,
// and keeps a family's samples together, which the format requires.
//
// Mistakes that Prometheus would reject or silently mangle are refused
// where they are made rather than shipped to the scraper: a malformed metric
// or label name, a counter without the `_total` suffix, a family declared
// twice with different types, and two samples with the same labels. Label
// values are escaped (backslash, double quote, newline) and any byte that is
// not valid UTF-8 becomes U+FFFD, since the format is UTF-8 and a node name
// from the wire is not guaranteed to be.
#include <concepts>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace mixlb::metrics {

enum class MetricType { kCounter, kGauge };

struct Label {
  std::string name;
  std::string value;
  friend auto operator<=>(const Label&, const Label&) = default;
};
using Labels = std::vector<Label>;

// A sample's value, formatted once: integers exactly (a counter past 2^53
// keeps its last digits), doubles in the shortest form that reads back to
// the same double, NaN and infinities as Prometheus spells them.
class SampleValue {
 public:
  template <std::integral T>
  SampleValue(T value) : text_(format_integer(value)) {}  // NOLINT: implicit on purpose
  SampleValue(double value);                              // NOLINT: implicit on purpose
  const std::string& text() const { return text_; }

 private:
  template <std::integral T>
  static std::string format_integer(T value) {
    if constexpr (std::same_as<T, bool>) {
      return value ? "1" : "0";
    } else if constexpr (std::is_signed_v<T>) {
      return std::to_string(static_cast<long long>(value));
    } else {
      return std::to_string(static_cast<unsigned long long>(value));
    }
  }
  std::string text_;
};

class MetricFamily {
 public:
  // Adds one sample. Throws std::invalid_argument for a malformed label name.
  MetricFamily& add(Labels labels, SampleValue value);
  // A sample without labels.
  MetricFamily& add(SampleValue value) { return add(Labels{}, std::move(value)); }

  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  std::size_t size() const { return samples_.size(); }

 private:
  friend class Exposition;
  MetricFamily(std::string name, MetricType type, std::string help)
      : name_(std::move(name)), type_(type), help_(std::move(help)) {}

  struct Sample {
    Labels labels;
    std::string value;
  };
  std::string name_;
  MetricType type_;
  std::string help_;
  std::vector<Sample> samples_;
};

class Exposition {
 public:
  // Declares a family, or returns the one already declared under `name`
  // when its type is the same (its first help stays). Throws
  // std::invalid_argument for a malformed name, a counter whose name does not
  // end in "_total", or a name declared before with the other type.
  MetricFamily& counter(std::string_view name, std::string_view help);
  MetricFamily& gauge(std::string_view name, std::string_view help);

  // The exposition. Throws std::logic_error when a family holds two samples
  // with the same labels (Prometheus would refuse the whole scrape).
  std::string text() const;

 private:
  MetricFamily& declare(std::string_view name, MetricType type, std::string_view help);
  std::map<std::string, MetricFamily, std::less<>> families_;
};

// The escapes of the format, exposed for tests and for anyone writing a
// label by hand: in a label value backslash, double quote and newline are
// escaped; in help text backslash and newline.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);

// The value as valid UTF-8: each byte that does not start or continue a
// well-formed sequence is replaced by U+FFFD.
std::string valid_utf8(std::string_view text);

bool valid_metric_name(std::string_view name);
// Label names may not begin with "__", which Prometheus keeps for itself.
bool valid_label_name(std::string_view name);

}  // namespace mixlb::metrics
