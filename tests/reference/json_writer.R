# The JSON writer shared by the make_*.R scripts (jsonlite is not among the Debian packages CI installs).
# Numbers are written with 17 significant digits, NA/NaN/Inf as null; json_scalar() marks a length-1 value
# that must not become an array.
json_scalar <- function(x) structure(x, class = c("json_scalar", class(x)))

json_string <- function(s) {
   s <- enc2utf8(as.character(s))
   s <- gsub("\\", "\\\\", s, fixed = TRUE)
   s <- gsub("\"", "\\\"", s, fixed = TRUE)
   s <- gsub("\n", "\\n", s, fixed = TRUE)
   s <- gsub("\t", "\\t", s, fixed = TRUE)
   paste0("\"", s, "\"")
}

json_atoms <- function(v) {
   if (is.factor(v)) v <- as.character(v)
   if (is.character(v)) return(ifelse(is.na(v), "null", json_string(v)))
   if (is.logical(v)) return(ifelse(is.na(v), "null", ifelse(v, "true", "false")))
   v <- as.numeric(v)
   ifelse(is.na(v) | !is.finite(v), "null", sprintf("%.17g", v))
}

to_json <- function(x, indent = "") {
   inner <- paste0(indent, "  ")
   if (is.null(x)) return("null")
   if (inherits(x, "json_scalar")) return(json_atoms(unclass(x)))
   if (is.list(x)) {
      if (!is.null(names(x))) {
         items <- vapply(names(x), function(n) paste0(inner, json_string(n), ": ", to_json(x[[n]], inner)), "")
         return(paste0("{\n", paste(items, collapse = ",\n"), "\n", indent, "}"))
      }
      items <- vapply(x, function(e) paste0(inner, to_json(e, inner)), "")
      return(paste0("[\n", paste(items, collapse = ",\n"), "\n", indent, "]"))
   }
   paste0("[", paste(json_atoms(x), collapse = ", "), "]")
}
