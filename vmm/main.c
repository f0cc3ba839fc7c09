#include "vmm/log.h"

int main(int argc, char **argv)
{
	log_info("thaw: skeleton");
	return 0;
}
