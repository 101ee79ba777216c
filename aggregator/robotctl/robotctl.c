#include <stdio.h>
int main(void) {
    fprintf(stderr, "robotctl: under construction\n");
    return 2;
}
