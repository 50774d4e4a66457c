// Build-time generator of the built-in parameterization tables (one source of truth).
// Usage: moedmft_gen_tables OUT_CPP TEMPLATE TOML_DIR [HAND_TABLE.toml ...]
// Writes the 12 calculus tables (mup-*, mssp-*) into TOML_DIR, and OUT_CPP from TEMPLATE (the
// @MOEDMFT_BUILTIN_ENTRIES@ placeholder) with the hand tables and the generated ones embedded.
// It is linked without moedmft_models (whose builtin table list it produces), so it carries its own
// empty list.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "solver/scaling/solve.hpp"

namespace moedmft::detail {
const std::vector<std::pair<std::string, std::string>>& builtin_table_texts() {
  static const std::vector<std::pair<std::string, std::string>> none;
  return none;
}
}  // namespace moedmft::detail

namespace {
std::string slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
void write_if_changed(const std::string& path, const std::string& text) {
  if (std::filesystem::exists(path) && slurp(path) == text) return;
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << text;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " OUT_CPP TEMPLATE TOML_DIR [HAND_TABLE.toml ...]\n";
    return 2;
  }
  try {
    std::vector<std::pair<std::string, std::string>> tables;
    for (int i = 4; i < argc; ++i)
      tables.emplace_back(std::filesystem::path(argv[i]).stem().string(), slurp(argv[i]));
    std::filesystem::create_directories(argv[3]);
    for (const auto& [name, text] : moedmft::scaling::generated_builtins()) {
      for (const auto& t : tables)
        if (t.first == name) throw std::runtime_error("hand table " + name + ".toml shadows a generated table");
      write_if_changed(std::string(argv[3]) + "/" + name + ".toml", text);
      tables.emplace_back(name, text);
    }
    std::sort(tables.begin(), tables.end());
    std::string entries;
    for (const auto& [name, text] : tables)
      entries += "  {\"" + name + "\", R\"moedmft_toml(" + text + ")moedmft_toml\"},\n";
    std::string tpl = slurp(argv[2]);
    const std::string key = "@MOEDMFT_BUILTIN_ENTRIES@";
    const auto at = tpl.find(key);
    if (at == std::string::npos) throw std::runtime_error(std::string(argv[2]) + ": no " + key);
    tpl.replace(at, key.size(), entries);
    write_if_changed(argv[1], tpl);
  } catch (const std::exception& e) {
    std::cerr << "moedmft_gen_tables: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
