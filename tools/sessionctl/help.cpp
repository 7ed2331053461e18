#include "help.hpp"

#include <algorithm>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "common.hpp"

namespace sessionctl {
namespace {

constexpr std::size_t kWidth = 80;
constexpr std::string_view kIndent = "    ";           // a section's body
constexpr std::string_view kOptionIndent = "        ";  // an option's help string, under its name

// Appends `tokens` separated by spaces and broken into lines of at most kWidth columns (a longer
// token gets a line of its own): the first line starts with `first`, the others with `next`.
void wrap_tokens(std::string& out, const std::vector<std::string>& tokens, std::string_view first,
                 std::string_view next) {
  if (tokens.empty()) return;
  out += first;
  std::size_t col = first.size();
  bool line_empty = true;
  for (const auto& t : tokens) {
    if (!line_empty && col + 1 + t.size() > kWidth) {
      out += '\n';
      out += next;
      col = next.size();
      line_empty = true;
    }
    if (!line_empty) {
      out += ' ';
      ++col;
    }
    out += t;
    col += t.size();
    line_empty = false;
  }
  out += '\n';
}

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t start = text.find_first_not_of(' ', i);
    if (start == std::string_view::npos) break;
    const std::size_t end = std::min(text.find(' ', start), text.size());
    out.emplace_back(text.substr(start, end - start));
    i = end;
  }
  return out;
}

// Lays `text` out by the rules in help.hpp, every line indented by `indent`.
std::string layout(std::string_view text, std::string_view indent) {
  std::string out, paragraph;
  auto flush = [&] {
    wrap_tokens(out, words(paragraph), indent, indent);
    paragraph.clear();
  };
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty()) {
      flush();
      out += '\n';
    } else if (line.front() == ' ') {
      flush();
      out.append(indent).append(line) += '\n';
    } else {
      if (!paragraph.empty()) paragraph += ' ';
      paragraph += line;
    }
  }
  flush();
  return out;
}

// Appends a section; an empty body means the section is left out.
void section(std::string& out, std::string_view title, const std::string& body) {
  if (body.empty()) return;
  if (!out.empty()) out += '\n';
  out.append(title) += '\n';
  out += body;
}

bool is_help(const CLI::App* app, const CLI::Option* opt) {
  return opt == app->get_help_ptr() || opt == app->get_help_all_ptr();
}

bool repeatable(const CLI::Option* opt) { return opt->get_expected_max() > 1; }

// One element of the synopsis: SESSION, [--timeout DURATION], [--attr ATTR]...
std::string synopsis_item(const CLI::Option* opt) {
  std::string item = opt->get_positional() ? opt->get_name(true) : opt->get_name();
  if (!opt->get_positional() && !opt->get_type_name().empty()) item += " " + opt->get_type_name();  // not a flag
  if (!opt->get_required()) item = "[" + item + "]";
  if (repeatable(opt)) item += "...";
  return item;
}

class ManPageFormatter final : public CLI::Formatter {
 public:
  ManPageFormatter(const CLI::App* owner, ManPage page) : owner_(owner), page_(std::move(page)) {}

  std::string make_help(const CLI::App* app, std::string name, CLI::AppFormatMode mode) const override {
    if (mode == CLI::AppFormatMode::Sub) return CLI::Formatter::make_help(app, name, mode);  // --help-all entries
    // A command without a page of its own inherited its parent's formatter: none of the texts fit.
    static const ManPage kNoPage;
    const ManPage& page = app == owner_ ? page_ : kNoPage;
    std::string out;
    section(out, "NAME", layout(name + " - " + app->get_description(), kIndent));
    section(out, "SYNOPSIS", synopsis(app, name));
    section(out, "DESCRIPTION", layout(page.description, kIndent));
    section(out, "COMMANDS", commands(app));
    section(out, "OPTIONS", options(app));
    section(out, "EXIT STATUS",
            layout(page.exit_status.empty() ? kExitCodeHelp : page.exit_status + "\n\n" + kExitCodeHelp, kIndent));
    section(out, "EXAMPLES", layout(page.examples, kIndent));
    if (!app->get_footer().empty()) out += "\n" + app->get_footer() + "\n";
    return out;
  }

 private:
  static std::string synopsis(const CLI::App* app, const std::string& name) {
    std::vector<std::string> items{name};
    for (const CLI::Option* opt : app->get_options([](const CLI::Option* o) { return o->get_positional(); }))
      items.push_back(synopsis_item(opt));
    for (const CLI::Option* opt : app->get_options([](const CLI::Option* o) { return o->nonpositional(); }))
      if (!is_help(app, opt)) items.push_back(synopsis_item(opt));
    if (!subcommands(app).empty()) items.insert(items.end(), {"COMMAND", "[ARGS]..."});
    std::string out;
    wrap_tokens(out, items, kIndent, std::string(kIndent.size() + name.size() + 1, ' '));
    return out;
  }

  static std::vector<const CLI::App*> subcommands(const CLI::App* app) {
    return app->get_subcommands([](const CLI::App* s) { return !s->get_name().empty() && !s->get_disabled(); });
  }

  static std::string commands(const CLI::App* app) {
    std::string out;
    for (const CLI::App* sub : subcommands(app)) {
      std::string first(kIndent);
      first += sub->get_name();
      first.resize(std::max(first.size() + 2, kIndent.size() + 14), ' ');
      wrap_tokens(out, words(sub->get_description()), first, std::string(kIndent.size() + 14, ' '));
    }
    return out;
  }

  std::string options(const CLI::App* app) const {
    std::string out;
    auto entry = [&](const CLI::Option* opt, std::string head) {
      out.append(kIndent).append(head) += '\n';
      out += layout(opt->get_description(), kOptionIndent);
    };
    for (const CLI::Option* opt : app->get_options([](const CLI::Option* o) { return o->get_positional(); }))
      entry(opt, opt->get_name(true));
    for (const CLI::Option* opt : app->get_options([](const CLI::Option* o) { return o->nonpositional(); }))
      entry(opt, make_option_name(opt, false) + make_option_opts(opt));
    return out;
  }

  const CLI::App* owner_;
  ManPage page_;
};

}  // namespace

void set_man_page(CLI::App& cmd, ManPage page) {
  cmd.formatter(std::make_shared<ManPageFormatter>(&cmd, std::move(page)));
}

}  // namespace sessionctl
