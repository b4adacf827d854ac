// placeholder: implemented by the engine owner
int main() { return 0; }
