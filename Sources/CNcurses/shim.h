#ifndef DMANOEL_CNCURSES_SHIM_H
#define DMANOEL_CNCURSES_SHIM_H
/* ncursesw.pc carries -D flags SwiftPM refuses, so the wide API is enabled here. */
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <locale.h>
#include <ncursesw/curses.h>

/* Swift 6 refuses imported C globals and cannot expand these macros: accessors instead. */
static inline WINDOW *dmanoel_stdscr(void) { return stdscr; }
static inline int dmanoel_lines(void) { return LINES; }
static inline int dmanoel_cols(void) { return COLS; }
static inline int dmanoel_color_pair(int n) { return COLOR_PAIR(n); }
static inline int dmanoel_a_bold(void) { return A_BOLD; }
static inline int dmanoel_a_reverse(void) { return A_REVERSE; }
static inline int dmanoel_a_dim(void) { return A_DIM; }
#endif
