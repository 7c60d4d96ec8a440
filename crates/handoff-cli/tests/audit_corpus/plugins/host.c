/* Loads each plugin named on the command line, calls it, and unloads it. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        void *handle = dlopen(argv[i], RTLD_NOW);
        if (!handle) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        int (*plugin)(volatile char *) = (int (*)(volatile char *))dlsym(handle, "plugin");
        volatile char c = 0;
        printf("%d\n", plugin(&c));
        dlclose(handle);
    }
    return 0;
}
