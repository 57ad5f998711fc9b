#include "metrics/exposition.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <system_error>

namespace mixlb::metrics {

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The length of the well-formed UTF-8 sequence at the start of `s`, or 0
// (Unicode 15, table 3-7: no overlong forms, no surrogates, nothing past
// U+10FFFF).
std::size_t utf8_sequence(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xbf;  // the range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (s.size() < length) return 0;
  if (byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i)
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  return length;
}

}  // namespace

std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const std::size_t n = utf8_sequence(text);
    if (n == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD
      text.remove_prefix(1);
      continue;
    }
    out.append(text.substr(0, n));
    text.remove_prefix(n);
  }
  return out;
}

namespace {

// Backslash and newline always; the double quote only inside a label value,
// where it would end the value.
std::string escape(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (const char c : valid_utf8(text)) {
    if (c == '\\' || (quote && c == '"')) {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string escape_label_value(std::string_view value) { return escape(value, true); }
std::string escape_help(std::string_view help) { return escape(help, false); }

bool valid_metric_name(std::string_view name) {
  if (name.empty() || !(is_alpha(name[0]) || name[0] == ':')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_alpha(c) || is_digit(c) || c == ':'; });
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || !is_alpha(name[0]) || name.starts_with("__")) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_alpha(c) || is_digit(c); });
}

SampleValue::SampleValue(double value) {
  if (std::isnan(value)) {
    text_ = "NaN";
  } else if (std::isinf(value)) {
    text_ = value > 0 ? "+Inf" : "-Inf";
  } else {
    char buffer[32];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
    // 32 bytes hold the longest shortest-form double ("-2.2250738585072014e-308").
    text_.assign(buffer, ec == std::errc() ? end : buffer);
  }
}

MetricFamily& MetricFamily::add(Labels labels, SampleValue value) {
  for (const auto& label : labels) {
    if (!valid_label_name(label.name))
      throw std::invalid_argument("metric " + name_ + ": malformed label name '" + label.name + "'");
  }
  samples_.push_back(Sample{std::move(labels), value.text()});
  return *this;
}

MetricFamily& Exposition::counter(std::string_view name, std::string_view help) {
  return declare(name, MetricType::kCounter, help);
}

MetricFamily& Exposition::gauge(std::string_view name, std::string_view help) {
  return declare(name, MetricType::kGauge, help);
}

MetricFamily& Exposition::declare(std::string_view name, MetricType type, std::string_view help) {
  if (!valid_metric_name(name))
    throw std::invalid_argument("malformed metric name '" + std::string(name) + "'");
  if (type == MetricType::kCounter && !name.ends_with("_total"))
    throw std::invalid_argument("counter " + std::string(name) + " must end in _total");
  if (const auto found = families_.find(name); found != families_.end()) {
    if (found->second.type() != type)
      throw std::invalid_argument("metric " + std::string(name) + " declared with two types");
    return found->second;
  }
  return families_
      .emplace(std::string(name), MetricFamily(std::string(name), type, std::string(help)))
      .first->second;
}

std::string Exposition::text() const {
  std::string out;
  for (const auto& [name, family] : families_) {
    out += "# HELP " + name + " " + escape_help(family.help_) + "\n";
    out += "# TYPE " + name + (family.type_ == MetricType::kCounter ? " counter\n" : " gauge\n");
    std::vector<const MetricFamily::Sample*> samples;
    samples.reserve(family.samples_.size());
    for (const auto& s : family.samples_) samples.push_back(&s);
    std::sort(samples.begin(), samples.end(),
              [](const auto* a, const auto* b) { return a->labels < b->labels; });
    for (std::size_t i = 0; i < samples.size(); ++i) {
      const auto& labels = samples[i]->labels;
      std::string line = name;
      if (!labels.empty()) {
        line += '{';
        for (std::size_t l = 0; l < labels.size(); ++l) {
          if (l) line += ',';
          line += labels[l].name + "=\"" + escape_label_value(labels[l].value) + '"';
        }
        line += '}';
      }
      if (i > 0 && samples[i - 1]->labels == labels)
        throw std::logic_error("two samples of " + line + " in one exposition");
      out += line + ' ' + samples[i]->value + '\n';
    }
  }
  return out;
}

}  // namespace mixlb::metrics
