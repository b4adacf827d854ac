// placeholder: implemented by the load-client owner
int main() { return 0; }
