/* A shared object that is not a modvm plugin: no descriptor symbol. */
int not_a_plugin(void);
int not_a_plugin(void)
{
	return 42;
}
